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
    cmake -S "$PGINCR_ROOT" -B "$PGINCR_BUILD" -DCMAKE_BUILD_TYPE="$type" ${PGINCR_CMAKE_ARGS:-} >/dev/null
    cmake --build "$PGINCR_BUILD" -j"$(nproc)" 2>&1 | grep -Ev '^\[ *[0-9]+%\]|^(Consolidate|Scanning|Built target)' || true
    [ -x "$PGINCR_BUILD/pgincr" ] || { echo "build failed" >&2; return 1; }
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

# start_cluster NAME: a cluster in $PGINCR_CLUSTERS/NAME on a free loopback port, with
# scram passwords on TCP. Exports <NAME>_PORT.
start_cluster() {
    local name=$1 dir="$PGINCR_CLUSTERS/$1" port
    port=$(free_port)
    mkdir -p "$dir"
    printf '%s\n' "$PGINCR_PG_PASSWORD" >"$PGINCR_CLUSTERS/pwfile"
    chown -R "$(pg_user)" "$PGINCR_CLUSTERS"
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -N -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 --pwfile="$PGINCR_CLUSTERS/pwfile" >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "-F -p $port -k $dir -c listen_addresses=127.0.0.1 -c max_prepared_transactions=10 -c fsync=off -c shared_buffers=256MB -c max_wal_size=4GB" \
        >/dev/null || { cat "$dir/server.log" >&2; return 1; }
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
