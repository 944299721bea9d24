# Shared by scripts/test, scripts/demo and scripts/bench: install what is missing,
# build, and run throwaway PostgreSQL clusters (as an unprivileged user when root,
# because postgres refuses to run as root).
# shellcheck shell=bash

PGINCR_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PGINCR_BUILD=${PGINCR_BUILD:-$PGINCR_ROOT/build}
PG_MAJOR=${PG_MAJOR:-15}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}

PGINCR_PACKAGES=(build-essential cmake pkg-config libpq-dev libboost-dev libboost-filesystem-dev
    nlohmann-json3-dev doctest-dev libcurl4-openssl-dev libssl-dev libcli11-dev libfmt-dev
    "postgresql-$PG_MAJOR" "postgresql-client-$PG_MAJOR" python3 procps time)

say() { printf '==> %s\n' "$*" >&2; }

ensure_deps() {
    local missing=()
    for p in "${PGINCR_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing: ${missing[*]}"
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    # Debian's postgresql package would create and start a default cluster; we only
    # want the binaries, so that nothing keeps running after the script.
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        "${sudo[@]}" mkdir -p /etc/postgresql-common
        echo 'create_main_cluster = false' | "${sudo[@]}" tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build_pgincr() {
    local type=${1:-RelWithDebInfo}
    # shellcheck disable=SC2086 # PGINCR_CMAKE_ARGS holds several arguments
    cmake -S "$PGINCR_ROOT" -B "$PGINCR_BUILD" -DCMAKE_BUILD_TYPE="$type" ${PGINCR_CMAKE_ARGS:-} >/dev/null
    # The progress lines are filtered out; the build's own status decides (pipefail), so
    # that a failed build never lets the suite run an older binary.
    if ! (set -o pipefail
        cmake --build "$PGINCR_BUILD" -j"$(nproc)" 2>&1 | { grep -Ev '^\[ *[0-9]+%\]|^(Consolidate|Scanning|Built target)' || true; }); then
        echo "build failed" >&2
        return 1
    fi
    [ -x "$PGINCR_BUILD/pgincr" ] || { echo "build failed: no $PGINCR_BUILD/pgincr" >&2; return 1; }
}

# The user that runs the clusters: ourselves, or when root an unprivileged account.
pg_user() {
    if [ "$(id -u)" -ne 0 ]; then
        id -un
    elif id postgres >/dev/null 2>&1; then
        echo postgres
    else
        useradd --system --no-create-home pgincr-pg >/dev/null 2>&1 || true
        echo pgincr-pg
    fi
}

as_pg() {
    if [ "$(id -u)" -ne 0 ]; then "$@"; else runuser -u "$(pg_user)" -- "$@"; fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 20000))
        port_free "$p" && { echo "$p"; return 0; }
    done
    return 1
}

# cluster_options DIR PORT: the postgres options every cluster runs with. pg_ctl restart
# reuses them from postmaster.opts, so a test can restart a cluster without knowing them.
cluster_options() {
    printf '%s' "-F -p $2 -k $1 -c listen_addresses=127.0.0.1 -c max_prepared_transactions=10 -c fsync=off -c shared_buffers=256MB -c max_wal_size=4GB"
}

# start_cluster NAME: a cluster in $PGINCR_CLUSTERS/NAME on a free loopback port, with
# scram passwords on TCP. Exports <NAME>_PORT. The source also gets $PGINCR_SOURCE_OPTIONS
# (the test suite's wal_level = logical).
start_cluster() {
    local name=$1 dir="$PGINCR_CLUSTERS/$1" port
    port=$(free_port)
    mkdir -p "$dir"
    printf '%s\n' "$PGINCR_PG_PASSWORD" >"$PGINCR_CLUSTERS/pwfile"
    chown -R "$(pg_user)" "$PGINCR_CLUSTERS"
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -N -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 --pwfile="$PGINCR_CLUSTERS/pwfile" >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
    local extra=
    [ "$name" = source ] && extra=${PGINCR_SOURCE_OPTIONS:-}
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "$(cluster_options "$dir" "$port") $extra" >/dev/null || { cat "$dir/server.log" >&2; return 1; }
    as_pg "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$port" -q -t 30
    printf -v "${name^^}_PORT" '%s' "$port"
    export "${name^^}_PORT"
}

# Stops only the clusters this shell started: a script run by the test suite (the demo,
# the bench) inherits PGINCR_CLUSTERS, and its exit trap must not stop the suite's.
stop_clusters() {
    local dir=${pgincr_started_clusters:-} d
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    for d in "$dir"/*/data; do
        [ -d "$d" ] && as_pg "$PG_BIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
    done
    [ -n "${PGINCR_KEEP_CLUSTERS:-}" ] || rm -rf "$dir"
}

# start_clusters: a source and a destination server. Exports what the tests read.
start_clusters() {
    PGINCR_CLUSTERS=$(mktemp -d /tmp/pgincr-clusters.XXXXXX)
    pgincr_started_clusters=$PGINCR_CLUSTERS # not exported: children do not own them
    chmod 755 "$PGINCR_CLUSTERS"
    export PGINCR_CLUSTERS
    export PGINCR_PG_PASSWORD=${PGINCR_PG_PASSWORD:-pgincr-test-secret}
    start_cluster source
    start_cluster dest
    export PGINCR_TEST_HOST=127.0.0.1
    export PGINCR_TEST_SRC_PORT=$SOURCE_PORT PGINCR_TEST_DST_PORT=$DEST_PORT
    export PGINCR_TEST_PASSWORD=$PGINCR_PG_PASSWORD
    export PGINCR_TEST_PG_BIN=$PG_BIN
    export PATH="$PG_BIN:$PATH"
}

# start_test_extras: what only the test suite needs, on top of start_clusters (the demo
# and the bench do not pay for it): TLS on the source, a hot standby of the source, and
# what a test needs to restart a cluster.
start_test_extras() {
    start_source_tls
    start_standby
    # Empty when not root: the tests then run pg_ctl themselves.
    if [ "$(id -u)" -eq 0 ]; then
        PGINCR_TEST_PG_USER=$(pg_user)
    else
        PGINCR_TEST_PG_USER=
    fi
    export PGINCR_TEST_PG_USER
}

# start_source_tls: a throwaway CA signs the source's certificate, valid for localhost
# and 127.0.0.1 so that sslmode=verify-full works with either host name; an unrelated CA
# is what a test trusts to see verification fail. The role pgincr_tls may only come in
# over TLS; every other connection still may use either. Exports PGINCR_TEST_CA_CERT and
# PGINCR_TEST_WRONG_CA_CERT.
start_source_tls() {
    local tls="$PGINCR_CLUSTERS/tls" data="$PGINCR_CLUSTERS/source/data" ca
    mkdir -p "$tls"
    chmod 755 "$tls"
    # EC keys: RSA key generation would cost a noticeable part of a second each.
    for ca in ca wrong-ca; do
        openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$tls/$ca.key" -out "$tls/$ca.crt" -days 30 -subj "/CN=pgincr test $ca" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
            >>"$tls/openssl.log" 2>&1 || { cat "$tls/openssl.log" >&2; return 1; }
    done
    printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1' 'basicConstraints=CA:FALSE' \
        'extendedKeyUsage=serverAuth' >"$tls/server.ext"
    { openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$tls/server.key" -subj /CN=localhost \
        | openssl x509 -req -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 30 \
            -extfile "$tls/server.ext" -out "$tls/server.crt"; } >>"$tls/openssl.log" 2>&1 \
        || { cat "$tls/openssl.log" >&2; return 1; }
    chmod 644 "$tls/ca.crt" "$tls/wrong-ca.crt"
    # The server refuses a key that others can read.
    install -o "$(pg_user)" -m 644 "$tls/server.crt" "$data/server.crt"
    install -o "$(pg_user)" -m 600 "$tls/server.key" "$data/server.key"
    printf '%s\n' '' '# start_source_tls' 'ssl = on' "ssl_cert_file = 'server.crt'" \
        "ssl_key_file = 'server.key'" >>"$data/postgresql.conf"
    # First match wins in pg_hba.conf, so the reject goes before initdb's lines.
    { echo 'hostnossl all pgincr_tls all reject'; cat "$data/pg_hba.conf"; } >"$data/pg_hba.conf.new"
    cat "$data/pg_hba.conf.new" >"$data/pg_hba.conf" # keeps the file's owner and mode
    rm -f "$data/pg_hba.conf.new"
    as_pg "$PG_BIN/pg_ctl" -D "$data" reload >/dev/null
    # The reload is asynchronous: wait until the source actually speaks TLS, checked
    # as a test would, so that no test races the postmaster re-reading its files.
    local i
    for i in $(seq 1 100); do
        PGPASSWORD=$PGINCR_PG_PASSWORD PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -qAt \
            "host=127.0.0.1 port=$SOURCE_PORT user=postgres dbname=postgres sslmode=verify-full sslrootcert=$tls/ca.crt" \
            -c 'SELECT 1' >/dev/null 2>&1 && break
        [ "$i" -eq 100 ] && { echo "the source did not enable TLS" >&2; tail -20 "$PGINCR_CLUSTERS/source/server.log" >&2; return 1; }
        sleep 0.05
    done
    export PGINCR_TEST_CA_CERT="$tls/ca.crt" PGINCR_TEST_WRONG_CA_CERT="$tls/wrong-ca.crt"
}

# start_standby: a streaming hot standby of the source in $PGINCR_CLUSTERS/standby, so
# that stop_clusters stops it too. initdb's pg_hba.conf already lets replication in from
# 127.0.0.1 with a password. Exports PGINCR_TEST_STANDBY_PORT.
start_standby() {
    local dir="$PGINCR_CLUSTERS/standby" port
    port=$(free_port)
    mkdir -p "$dir"
    chown "$(pg_user)" "$dir"
    # The password goes through the environment, never the command line; -R writes it
    # into the standby's primary_conninfo, which is as private as the data directory.
    # The copy and the streaming skip TLS: over TLS the copy alone takes half a second
    # longer. The standby still gets the source's certificate, key and pg_hba.conf.
    PGPASSWORD=$PGINCR_PG_PASSWORD PGSSLMODE=disable as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 \
        -p "$SOURCE_PORT" -U postgres -D "$dir/data" -R -X stream --checkpoint=fast --no-sync \
        --no-manifest >"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; return 1; }
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "$(cluster_options "$dir" "$port") -c hot_standby=on -c hot_standby_feedback=off -c max_standby_streaming_delay=2s" \
        >/dev/null || { cat "$dir/server.log" >&2; return 1; }
    as_pg "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$port" -q -t 30
    export PGINCR_TEST_STANDBY_PORT=$port
}
