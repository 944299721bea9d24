#include "config.hpp"

#include "source/filter.hpp"
#include "util/dotenv.hpp"
#include "util/error.hpp"
#include "util/hash.hpp"

#include <algorithm>
#include <cctype>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unistd.h>

extern char **environ;

namespace pgincr::config {

namespace {

using json = nlohmann::json;

const std::set<std::string> known_keys = {
    "SOURCE_HOST",
    "SOURCE_PORT",
    "SOURCE_DB",
    "SOURCE_USERNAME",
    "SOURCE_PASSWORD",
    "SOURCE_SCHEMA",
    "DEST_HOST",
    "DEST_PORT",
    "DEST_DB",
    "DEST_USERNAME",
    "DEST_PASSWORD",
    "DEST_SCHEMA",
    "PIPELINE_NAME",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "WEBHOOK_TIMEOUT_SECONDS",
    "WEBHOOK_ATTEMPTS",
    "PGINCR_FALLBACK_LOOKBACK_SECONDS",
    "PGINCR_LOAD_VIA",
    "PGINCR_LOCK_TIMEOUT_SECONDS",
    "SOURCE_SSLMODE",
    "SOURCE_SSLROOTCERT",
    "SOURCE_SSLCERT",
    "SOURCE_SSLKEY",
    "DEST_SSLMODE",
    "DEST_SSLROOTCERT",
    "DEST_SSLCERT",
    "DEST_SSLKEY",
    "SOURCE_PRIMARY_HOST",
    "SOURCE_PRIMARY_PORT",
    "SOURCE_PRIMARY_USERNAME",
    "SOURCE_PRIMARY_PASSWORD",
    "PGINCR_SLOT",
    "PGINCR_PUBLICATION",
    "WEBHOOK_EVENTS",
    "PGINCR_IN_SYNC_LAG_SECONDS",
    "PGINCR_WATCH_UNREACHABLE_CYCLES",
    "LAG_ALERT_SECONDS",
    "LAG_ALERT_REPEAT_SECONDS",
};

// Prefixes that belong to pgincr: an unknown key with one of them is a typo.
const std::vector<std::string> owned_prefixes = {"SOURCE_", "DEST_", "WEBHOOK_", "PGINCR_"};

int parse_int(const std::string &value, const std::string &key, const std::string &origin, int min,
              int max) {
    try {
        std::size_t used = 0;
        long v = std::stol(value, &used);
        if (used == value.size() && v >= min && v <= max)
            return static_cast<int>(v);
    } catch (const std::exception &) {
    }
    throw ConfigError(fmt::format("{}: {} must be a whole number from {} to {}, got '{}'", origin,
                                  key, min, max, value));
}

// Seconds above 0, fractions allowed, at most a year.
double parse_seconds(const std::string &value, const std::string &key, const std::string &origin) {
    try {
        std::size_t used = 0;
        double v = std::stod(value, &used);
        if (used == value.size() && v > 0 && v <= 31536000)
            return v;
    } catch (const std::exception &) {
    }
    throw ConfigError(fmt::format("{}: {} must be a number of seconds above 0 and at most "
                                  "31536000, got '{}'",
                                  origin, key, value));
}

} // namespace

std::optional<double> lag_alert_threshold(const Settings &settings, const Table &table) {
    return table.lag_alert_seconds ? table.lag_alert_seconds : settings.lag_alert_seconds;
}

const char *mode_name(Mode mode) {
    switch (mode) {
    case Mode::incremental_deduped:
        return "incremental-deduped";
    case Mode::incremental_append:
        return "incremental-append";
    case Mode::full_refresh:
        return "full-refresh";
    case Mode::cdc:
        return "cdc";
    }
    return "?";
}

std::string default_slot_name(const std::string &pipeline) {
    std::string out = "pgincr_";
    for (unsigned char c : pipeline)
        out += std::isalnum(c) ? static_cast<char>(std::tolower(c)) : '_';
    return out.substr(0, 63);
}

bool any_cdc(const std::vector<Table> &tables) {
    return std::any_of(tables.begin(), tables.end(),
                       [](const Table &t) { return t.mode == Mode::cdc; });
}

const char *deletes_name(Deletes deletes) {
    switch (deletes) {
    case Deletes::ignore:
        return "ignore";
    case Deletes::hard:
        return "hard";
    case Deletes::soft:
        return "soft";
    }
    return "?";
}

const char *conflict_name(Conflict conflict) {
    switch (conflict) {
    case Conflict::source_wins:
        return "source_wins";
    case Conflict::newest_wins:
        return "newest_wins";
    case Conflict::target_wins:
        return "target_wins";
    case Conflict::manual:
        return "manual";
    }
    return "?";
}

std::string options_signature(const Table &t) {
    if (t.mode == Mode::incremental_deduped && !t.filter && t.deletes != Deletes::soft)
        return "";
    nlohmann::json j;
    j["mode"] = mode_name(t.mode);
    // Soft deletes add a column to the destination table; hard deletes only change
    // which rows stay, which the first delete check brings about.
    if (t.deletes == Deletes::soft)
        j["deletes"] = "soft";
    if (t.filter) {
        j["where"] = t.filter->where;
        j["params"] = t.filter->params;
    }
    return hash::sha256_hex(j.dump());
}

std::map<std::string, std::string> process_environment() {
    std::map<std::string, std::string> out;
    for (char **e = environ; e && *e; ++e) {
        std::string entry(*e);
        auto eq = entry.find('=');
        if (eq != std::string::npos)
            out[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
    return out;
}

Settings load_settings(const std::filesystem::path &env_file,
                       const std::map<std::string, std::string> &environment) {
    const std::string origin = env_file.string();
    auto file_values = dotenv::read(env_file, /*optional=*/true);
    bool file_exists = std::filesystem::exists(env_file);

    for (const auto &[key, value] : file_values) {
        if (known_keys.count(key))
            continue;
        for (const auto &prefix : owned_prefixes)
            if (key.rfind(prefix, 0) == 0)
                throw ConfigError(fmt::format("{}: unknown key {}", origin, key));
    }

    // Real environment variables override the file, as in every dotenv tool.
    auto get = [&](const std::string &key) -> std::optional<std::string> {
        if (auto it = environment.find(key); it != environment.end())
            return it->second;
        if (auto it = file_values.find(key); it != file_values.end())
            return it->second;
        return std::nullopt;
    };
    auto required = [&](const std::string &key) {
        auto v = get(key);
        if (!v || v->empty()) {
            if (!file_exists)
                throw ConfigError(fmt::format(
                    "{}: file not found, and {} is not set in the environment", origin, key));
            throw ConfigError(fmt::format("{}: {} is missing or empty", origin, key));
        }
        return *v;
    };
    auto optional = [&](const std::string &key, const std::string &fallback) {
        auto v = get(key);
        return v && !v->empty() ? *v : fallback;
    };

    Settings s;
    s.source.side = pg::Side::source;
    s.source.read_only = true;
    s.source.host = required("SOURCE_HOST");
    s.source.port = optional("SOURCE_PORT", "5432");
    s.source.dbname = required("SOURCE_DB");
    s.source.user = required("SOURCE_USERNAME");
    s.source.password = optional("SOURCE_PASSWORD", "");
    s.source_schema = required("SOURCE_SCHEMA");

    s.dest.side = pg::Side::dest;
    s.dest.host = required("DEST_HOST");
    s.dest.port = optional("DEST_PORT", "5432");
    s.dest.dbname = required("DEST_DB");
    s.dest.user = required("DEST_USERNAME");
    s.dest.password = optional("DEST_PASSWORD", "");
    s.dest_schema = optional("DEST_SCHEMA", s.source_schema);

    s.lock_timeout_seconds = parse_int(optional("PGINCR_LOCK_TIMEOUT_SECONDS", "300"),
                                       "PGINCR_LOCK_TIMEOUT_SECONDS", origin, 1, 24 * 3600);
    // TLS per side; unset keys leave libpq's PGSSLMODE ... in charge, for both sides.
    for (auto *side : {&s.source, &s.dest}) {
        std::string prefix = side->side == pg::Side::source ? "SOURCE_" : "DEST_";
        side->sslmode = optional(prefix + "SSLMODE", "");
        side->sslrootcert = optional(prefix + "SSLROOTCERT", "");
        side->sslcert = optional(prefix + "SSLCERT", "");
        side->sslkey = optional(prefix + "SSLKEY", "");
        static const std::set<std::string> modes = {"disable", "allow",     "prefer",
                                                    "require", "verify-ca", "verify-full"};
        if (!side->sslmode.empty() && !modes.count(side->sslmode))
            throw ConfigError(fmt::format("{}: {}SSLMODE must be one of disable, allow, prefer, "
                                          "require, verify-ca, verify-full; got '{}'",
                                          origin, prefix, side->sslmode));
        side->pinned = true;
        side->lock_timeout_seconds = s.lock_timeout_seconds;
    }
    if (auto host = optional("SOURCE_PRIMARY_HOST", ""); !host.empty()) {
        pg::ConnInfo primary = s.source;
        primary.host = host;
        primary.port = optional("SOURCE_PRIMARY_PORT", s.source.port);
        primary.user = optional("SOURCE_PRIMARY_USERNAME", s.source.user);
        primary.password = optional("SOURCE_PRIMARY_PASSWORD", s.source.password);
        parse_int(primary.port, "SOURCE_PRIMARY_PORT", origin, 1, 65535);
        s.source_primary = primary;
    } else if (!optional("SOURCE_PRIMARY_PORT", "").empty()) {
        throw ConfigError(
            fmt::format("{}: SOURCE_PRIMARY_PORT is set but SOURCE_PRIMARY_HOST is not", origin));
    }

    parse_int(s.source.port, "SOURCE_PORT", origin, 1, 65535);
    parse_int(s.dest.port, "DEST_PORT", origin, 1, 65535);

    std::string cwd_name = std::filesystem::current_path().filename().string();
    s.pipeline_name = optional("PIPELINE_NAME", cwd_name.empty() ? "pgincr" : cwd_name);

    s.slot = optional("PGINCR_SLOT", default_slot_name(s.pipeline_name));
    bool slot_ok = !s.slot.empty() && s.slot.size() <= 63;
    for (char c : s.slot)
        slot_ok = slot_ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
    if (!slot_ok)
        throw ConfigError(fmt::format("{}: PGINCR_SLOT '{}' is not a valid replication slot name: "
                                      "use lower-case letters, digits and underscores, at most "
                                      "63 bytes",
                                      origin, s.slot));
    s.publication = optional("PGINCR_PUBLICATION", s.slot);
    if (s.publication.size() > 63)
        throw ConfigError(fmt::format("{}: PGINCR_PUBLICATION is {} bytes; PostgreSQL's names "
                                      "have at most 63",
                                      origin, s.publication.size()));

    s.webhook.url = optional("WEBHOOK_URL", "");
    s.webhook.secret = optional("WEBHOOK_SECRET", "");
    s.webhook.timeout_seconds = parse_int(optional("WEBHOOK_TIMEOUT_SECONDS", "10"),
                                          "WEBHOOK_TIMEOUT_SECONDS", origin, 1, 60);
    s.webhook.attempts =
        parse_int(optional("WEBHOOK_ATTEMPTS", "3"), "WEBHOOK_ATTEMPTS", origin, 1, 10);
    s.fallback_lookback_seconds =
        parse_int(optional("PGINCR_FALLBACK_LOOKBACK_SECONDS", "900"),
                  "PGINCR_FALLBACK_LOOKBACK_SECONDS", origin, 0, 7 * 24 * 3600);
    auto events = optional("WEBHOOK_EVENTS", "changes");
    if (events == "all")
        s.webhook.events = WebhookEvents::all;
    else if (events == "failures")
        s.webhook.events = WebhookEvents::failures;
    else if (events != "changes")
        throw ConfigError(fmt::format(
            "{}: WEBHOOK_EVENTS must be all, changes or failures, got '{}'", origin, events));
    s.in_sync_lag_seconds = parse_int(optional("PGINCR_IN_SYNC_LAG_SECONDS", "5"),
                                      "PGINCR_IN_SYNC_LAG_SECONDS", origin, 0, 24 * 3600);
    s.watch_unreachable_cycles = parse_int(optional("PGINCR_WATCH_UNREACHABLE_CYCLES", "3"),
                                           "PGINCR_WATCH_UNREACHABLE_CYCLES", origin, 1, 1000000);
    if (auto v = optional("LAG_ALERT_SECONDS", ""); !v.empty())
        s.lag_alert_seconds = parse_seconds(v, "LAG_ALERT_SECONDS", origin);
    s.lag_alert_repeat_seconds = parse_seconds(optional("LAG_ALERT_REPEAT_SECONDS", "3600"),
                                               "LAG_ALERT_REPEAT_SECONDS", origin);
    auto via = optional("PGINCR_LOAD_VIA", "copy");
    if (via == "pg_dump")
        s.load_via = LoadVia::pg_dump;
    else if (via != "copy")
        throw ConfigError(
            fmt::format("{}: PGINCR_LOAD_VIA must be copy or pg_dump, got '{}'", origin, via));
    return s;
}

namespace {

std::string line_col(const std::string &text, std::size_t byte) {
    int line = 1, col = 1;
    for (std::size_t i = 0; i < byte && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++line;
            col = 1;
        } else {
            ++col;
        }
    }
    return fmt::format("line {}, column {}", line, col);
}

const char *json_type(const json &v) {
    return v.type_name();
}

// "deletes", "delete_check_seconds", "max_delete_fraction", and what each mode makes
// of them (README.md, "Deletes").
template <typename Fail> void parse_deletes(const json &item, Table &t, const Fail &fail) {
    if (item.contains("deletes")) {
        const auto &v = item["deletes"];
        std::string d = v.is_string() ? v.get<std::string>() : "";
        if (d == "ignore")
            t.deletes = Deletes::ignore;
        else if (d == "hard")
            t.deletes = Deletes::hard;
        else if (d == "soft")
            t.deletes = Deletes::soft;
        else
            throw fail("deletes",
                       fmt::format("{} is not one of \"ignore\", \"hard\", \"soft\"", v.dump()));
    }
    if (item.contains("deletes") && t.mode == Mode::cdc)
        throw fail("deletes", "a cdc entry applies the source's deletes as they happen; remove "
                              "\"deletes\"");
    if (t.deletes != Deletes::ignore && t.mode == Mode::incremental_append)
        throw fail("deletes",
                   "incremental-append keeps every version of a row as history, so a row "
                   "deleted in the source has nothing to remove; deletes apply to "
                   "incremental-deduped entries (remove \"deletes\", or change the mode)");
    if (t.deletes == Deletes::soft && t.mode == Mode::full_refresh)
        throw fail("deletes", "a full-refresh entry is reloaded whole on every sync, so it "
                              "cannot keep a deleted row; full-refresh already drops deleted "
                              "rows (use \"hard\" or leave \"deletes\" out)");
    bool checks = t.deletes != Deletes::ignore && t.mode == Mode::incremental_deduped;
    auto only_with_checks = [&](const char *key) {
        if (!checks)
            throw fail(key, t.mode == Mode::incremental_deduped
                                ? "only applies with \"deletes\": \"hard\" or \"soft\""
                                : "only applies to incremental-deduped entries with \"deletes\": "
                                  "\"hard\" or \"soft\" (a full-refresh reload needs no delete "
                                  "check)");
    };
    if (item.contains("delete_check_seconds")) {
        only_with_checks("delete_check_seconds");
        const auto &v = item["delete_check_seconds"];
        if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > 31536000)
            throw fail("delete_check_seconds", "expected a whole number of seconds from 0 (every "
                                               "sync) to 31536000");
        t.delete_check_seconds = v.get<int>();
    }
    if (item.contains("max_delete_fraction")) {
        only_with_checks("max_delete_fraction");
        const auto &v = item["max_delete_fraction"];
        if (!v.is_number() || v.get<double>() <= 0 || v.get<double>() > 1)
            throw fail("max_delete_fraction", "expected a number above 0 and at most 1 (the "
                                              "share of the destination's rows one sync may "
                                              "delete; 0.1 is 10%)");
        t.max_delete_fraction = v.get<double>();
    }
}

// "conflict" and "conflict_column" (README.md, "Conflicts"). Only an entry that updates
// rows in place can meet a destination change: append keeps versions, full-refresh
// reloads, and the cdc mode does not support the policies.
template <typename Fail> void parse_conflict(const json &item, Table &t, const Fail &fail) {
    if (item.contains("conflict")) {
        const auto &v = item["conflict"];
        std::string c = v.is_string() ? v.get<std::string>() : "";
        if (c == "source_wins")
            t.conflict = Conflict::source_wins;
        else if (c == "newest_wins")
            t.conflict = Conflict::newest_wins;
        else if (c == "target_wins")
            t.conflict = Conflict::target_wins;
        else if (c == "manual")
            t.conflict = Conflict::manual;
        else
            throw fail("conflict", fmt::format("{} is not one of \"source_wins\", "
                                               "\"newest_wins\", \"target_wins\", \"manual\"",
                                               v.dump()));
        bool cdc_newest = t.mode == Mode::cdc && t.conflict == Conflict::newest_wins;
        if (t.conflict != Conflict::source_wins && t.mode != Mode::incremental_deduped &&
            !cdc_newest)
            throw fail("conflict",
                       t.mode == Mode::cdc
                           ? "a cdc entry supports \"source_wins\" and \"newest_wins\" (with a "
                             "\"conflict_column\"); \"target_wins\" and \"manual\" are not "
                             "supported for cdc entries yet. Use an incremental-deduped entry, "
                             "or change \"conflict\""
                           : "only incremental-deduped entries update rows in place, so only "
                             "they can meet a destination change (remove \"conflict\", or "
                             "change the mode)");
    }
    if (item.contains("conflict_column")) {
        const auto &v = item["conflict_column"];
        if (t.conflict != Conflict::newest_wins)
            throw fail("conflict_column", "only applies with \"conflict\": \"newest_wins\"");
        if (!v.is_string() || v.get<std::string>().empty())
            throw fail("conflict_column", "expected the name of a column of the table");
        t.conflict_column = v.get<std::string>();
    }
    if (t.mode == Mode::cdc && t.conflict == Conflict::newest_wins && t.conflict_column.empty())
        throw fail("conflict", "a cdc entry has no replication_key to compare: \"newest_wins\" "
                               "needs a \"conflict_column\" (say, the table's updated_at)");
    // <destination>_pgincr_touched must fit PostgreSQL's 63-byte names (the
    // _conflicts table's name is shorter).
    if ((t.conflict == Conflict::target_wins || t.conflict == Conflict::manual) &&
        t.destination.size() > 48)
        throw fail("destination",
                   fmt::format("\"{}\" is {} bytes; with \"conflict\": \"{}\" its side table "
                               "\"<destination>_pgincr_touched\" would exceed PostgreSQL's "
                               "63-byte limit for names; set a \"destination\" of at most 48 "
                               "bytes",
                               t.destination, t.destination.size(), conflict_name(t.conflict)));
}

} // namespace

std::vector<Table> parse_tables(const std::string &text, const std::string &origin) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::parse_error &e) {
        // e.byte is one past the offending character.
        std::string what = e.what();
        auto pos = what.find("syntax error");
        throw ConfigError(fmt::format("{}: invalid JSON at {}: {}", origin,
                                      line_col(text, e.byte ? e.byte - 1 : 0),
                                      pos == std::string::npos ? what : what.substr(pos)));
    }
    if (!doc.is_array())
        throw ConfigError(
            fmt::format("{}: expected a JSON array of tables, got {}", origin, json_type(doc)));
    if (doc.empty())
        throw ConfigError(fmt::format("{}: the array is empty; list at least one table", origin));

    std::vector<Table> tables;
    std::set<std::string> destinations;
    std::set<std::string> stagings;
    std::set<std::string> streamed; // source tables of cdc entries
    int entry = 0;
    for (const auto &item : doc) {
        ++entry;
        std::string where = fmt::format("{}: entry {}", origin, entry);
        if (!item.is_object())
            throw ConfigError(
                fmt::format("{}: expected an object, got {}", where, json_type(item)));
        if (item.contains("name") && item["name"].is_string())
            where += fmt::format(" (\"{}\")", item["name"].get<std::string>());
        auto fail = [&](const std::string &key, const std::string &msg) {
            return ConfigError(fmt::format("{}: key \"{}\": {}", where, key, msg));
        };
        auto get_string = [&](const std::string &key) -> std::optional<std::string> {
            if (!item.contains(key))
                return std::nullopt;
            const auto &v = item[key];
            if (!v.is_string())
                throw fail(key, fmt::format("expected a string, got {}", json_type(v)));
            if (v.get<std::string>().empty())
                throw fail(key, "must not be empty");
            return v.get<std::string>();
        };

        static const std::set<std::string> allowed = {"name",
                                                      "replication_key",
                                                      "unique_cols",
                                                      "mode",
                                                      "destination",
                                                      "filter",
                                                      "lookback_seconds",
                                                      "indexes",
                                                      "deletes",
                                                      "delete_check_seconds",
                                                      "max_delete_fraction",
                                                      "conflict",
                                                      "conflict_column",
                                                      "lag_alert_seconds"};
        for (const auto &[key, _] : item.items())
            if (!allowed.count(key))
                throw ConfigError(fmt::format("{}: unknown key \"{}\" (known keys: name, "
                                              "replication_key, unique_cols, mode, destination, "
                                              "filter, lookback_seconds, indexes, deletes, "
                                              "delete_check_seconds, max_delete_fraction, "
                                              "conflict, conflict_column, "
                                              "lag_alert_seconds)",
                                              where, key));

        Table t;
        t.entry = entry;
        auto name = get_string("name");
        if (!name)
            throw fail("name", "is missing");
        t.name = *name;
        t.destination = get_string("destination").value_or(t.name);

        if (auto mode = get_string("mode")) {
            if (*mode == "incremental-deduped")
                t.mode = Mode::incremental_deduped;
            else if (*mode == "incremental-append")
                t.mode = Mode::incremental_append;
            else if (*mode == "full-refresh")
                t.mode = Mode::full_refresh;
            else if (*mode == "cdc")
                t.mode = Mode::cdc;
            else
                throw fail("mode", fmt::format("'{}' is not one of incremental-deduped, "
                                               "incremental-append, full-refresh, cdc",
                                               *mode));
        }

        auto key = get_string("replication_key");
        if (!key && t.mode != Mode::full_refresh && t.mode != Mode::cdc)
            throw fail("replication_key",
                       "is missing (only full-refresh and cdc tables may omit it)");
        // A cdc entry streams every change: a cursor column plays no part in it.
        if (t.mode == Mode::cdc)
            key.reset();
        t.replication_key = key.value_or("");

        if (item.contains("unique_cols")) {
            const auto &cols = item["unique_cols"];
            if (!cols.is_array())
                throw fail("unique_cols", fmt::format("expected an array of column names, got {}",
                                                      json_type(cols)));
            if (cols.empty())
                throw fail("unique_cols", "must list at least one column (or be omitted to use "
                                          "the source's primary key)");
            std::set<std::string> seen;
            for (const auto &c : cols) {
                if (!c.is_string() || c.get<std::string>().empty())
                    throw fail("unique_cols", "every element must be a non-empty string");
                if (!seen.insert(c.get<std::string>()).second)
                    throw fail("unique_cols",
                               fmt::format("column \"{}\" is listed twice", c.get<std::string>()));
                t.unique_cols.push_back(c.get<std::string>());
            }
        }

        if (item.contains("lookback_seconds")) {
            const auto &v = item["lookback_seconds"];
            if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > 31536000)
                throw fail("lookback_seconds", "expected a whole number of seconds from 0 to "
                                               "31536000");
            t.lookback_seconds = v.get<int>();
        }

        if (auto idx = get_string("indexes")) {
            if (*idx == "unique")
                t.indexes = Indexes::unique;
            else if (*idx == "all")
                t.indexes = Indexes::all;
            else
                throw fail("indexes", fmt::format("'{}' is not one of unique, all", *idx));
        }

        parse_deletes(item, t, fail);
        parse_conflict(item, t, fail);

        if (item.contains("lag_alert_seconds")) {
            const auto &v = item["lag_alert_seconds"];
            if (!v.is_number() || v.get<double>() <= 0 || v.get<double>() > 31536000)
                throw fail("lag_alert_seconds", fmt::format("expected a number of seconds above 0 "
                                                            "and at most 31536000, got {}",
                                                            v.dump()));
            // Without a key a full-refresh entry has no mark to fall behind.
            if (t.mode == Mode::full_refresh && t.replication_key.empty())
                throw fail("lag_alert_seconds", "a full-refresh entry without \"replication_key\" "
                                                "has no mark, so it has no lag to alert on; add "
                                                "a \"replication_key\" or remove "
                                                "\"lag_alert_seconds\"");
            t.lag_alert_seconds = v.get<double>();
        }

        if (item.contains("filter")) {
            const auto &f = item["filter"];
            if (!f.is_object())
                throw fail("filter", "expected an object {\"where\": \"...\", \"params\": [...]}");
            for (const auto &[k, _] : f.items())
                if (k != "where" && k != "params")
                    throw fail("filter",
                               fmt::format("unknown key \"{}\" (known: where, params)", k));
            if (!f.contains("where") || !f["where"].is_string() ||
                f["where"].get<std::string>().empty())
                throw fail("filter", "\"where\" must be a non-empty string");
            Filter filter;
            filter.where = f["where"].get<std::string>();
            if (f.contains("params")) {
                if (!f["params"].is_array())
                    throw fail("filter", "\"params\" must be an array");
                for (const auto &p : f["params"]) {
                    if (p.is_string())
                        filter.params.push_back(p.get<std::string>());
                    else if (p.is_number() || p.is_boolean())
                        filter.params.push_back(p.dump());
                    else
                        throw fail("filter", "\"params\" elements must be strings, numbers or "
                                             "booleans");
                }
            }
            // Checked here, not at sync time: there a mismatch would only fail the table
            // (exit 1) after the run had started, or surface as a server error about
            // the bind message.
            std::set<int> used;
            for (const auto &ph : filter::placeholders(filter.where))
                used.insert(ph.number);
            int n = static_cast<int>(filter.params.size());
            for (int u : used)
                if (u < 1 || u > n)
                    throw fail("filter", fmt::format("\"where\" uses ${} but \"params\" has {} "
                                                     "value(s)",
                                                     u, n));
            for (int i = 1; i <= n; ++i)
                if (!used.count(i))
                    throw fail("filter", fmt::format("\"params\" has {} value(s) but \"where\" "
                                                     "never uses ${}",
                                                     n, i));
            t.filter = std::move(filter);
        }

        if (t.mode == Mode::cdc) {
            if (t.filter)
                throw fail("filter", "a cdc entry streams every change of its table, and row "
                                     "filters are not supported there; use an incremental mode "
                                     "for a filtered copy");
            if (item.contains("lookback_seconds"))
                throw fail("lookback_seconds", "a cdc entry reads no cursor, so it has no "
                                               "window to re-read; remove \"lookback_seconds\"");
            // One stream routes each source table's changes to one destination table.
            if (!streamed.insert(t.name).second)
                throw fail("name", fmt::format("source table \"{}\" is already streamed by an "
                                               "earlier cdc entry; one cdc entry per source "
                                               "table",
                                               t.name));
        }
        if (!destinations.insert(t.destination).second)
            throw ConfigError(fmt::format(
                "{}: destination table \"{}\" is already used by an earlier entry; give one of "
                "them a different \"destination\"",
                where, t.destination));
        // Each destination has a staging table "<destination>_stg" (ddl::staging_name)
        // that syncs TRUNCATE and DROP: it must never be another entry's table, nor,
        // truncated by the server to 63 bytes, the destination itself.
        std::string staging = t.destination + "_stg";
        if (staging.size() > 63)
            throw fail("destination",
                       fmt::format("\"{}\" is {} bytes; its staging table \"{}\" would exceed "
                                   "PostgreSQL's 63-byte limit for names; set a \"destination\" "
                                   "of at most 59 bytes",
                                   t.destination, t.destination.size(), staging));
        if (destinations.count(staging) || stagings.count(t.destination))
            throw fail("destination",
                       fmt::format("\"{}\" would share a name with the staging table of another "
                                   "entry (\"<destination>_stg\"); give one of them a different "
                                   "\"destination\"",
                                   t.destination));
        stagings.insert(staging);
        tables.push_back(std::move(t));
    }
    return tables;
}

std::vector<Table> load_tables(const std::filesystem::path &file) {
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw ConfigError(fmt::format("{}: cannot read the file", file.string()));
    std::ostringstream buf;
    buf << in.rdbuf();
    return parse_tables(buf.str(), file.string());
}

std::vector<Table> select_tables(const std::vector<Table> &all,
                                 const std::vector<std::string> &names, const std::string &origin,
                                 const std::string &what) {
    if (names.empty())
        return all;
    std::vector<Table> out;
    for (const auto &n : names) {
        auto it = std::find_if(all.begin(), all.end(),
                               [&](const Table &t) { return t.destination == n; });
        if (it == all.end())
            throw ConfigError(fmt::format("{}{}: no such table in {}", what, n, origin));
        out.push_back(*it);
    }
    return out;
}

} // namespace pgincr::config
