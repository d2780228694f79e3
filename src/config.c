/*
 * config.c: rqlited's flags, parsed like Go's flag package.
 *
 * One table describes every flag (name, kind, where it goes, default,
 * usage); parsing, defaults, -h output and config_free all walk it.
 */
#include "config.h"

#include "util/addr.h"
#include "util/duration.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

typedef enum { F_STR, F_BOOL, F_INT, F_U64, F_DUR, F_JOIN, F_IGNORED } flag_kind;

/* What setting a flag whose feature is not built yet prints at start-up,
 * instead of ignoring it silently. */
#define F_TODO "is accepted but not supported yet by this build; ignored"

typedef struct flag_def {
    const char *name;
    flag_kind kind;
    size_t off;          /* offset in struct config, unused for F_IGNORED */
    const char *def;     /* default as text ("" for none) */
    const char *usage;
    const char *note;    /* printed at start-up when the flag is set (NULL: none) */
} flag_def;

#define O(f) offsetof(config, f)

static const flag_def flags[] = {
    {"auth", F_STR, O(auth), "", "Path to authentication and authorization file. If not set, not enabled", NULL},
    {"auto-backup", F_STR, O(auto_backup), "", "Path to automatic backup configuration file. If not set, not enabled", NULL},
    {"auto-optimize-int", F_DUR, O(auto_optimize_int_ms), "24h0m0s", "Period between automatic 'PRAGMA optimize'. Set to 0h to disable", NULL},
    {"auto-restore", F_STR, O(auto_restore), "", "Path to automatic restore configuration file. If not set, not enabled", NULL},
    {"auto-vacuum-int", F_DUR, O(auto_vacuum_int_ms), "0s", "Period between automatic VACUUMs. It not set, not enabled", NULL},
    {"bootstrap-expect", F_INT, O(bootstrap_expect), "0", "Minimum number of nodes required for a bootstrap", NULL},
    {"bootstrap-expect-timeout", F_DUR, O(bootstrap_expect_timeout_ms), "2m0s", "Maximum time for bootstrap process", NULL},
    {"cdc-config", F_STR, O(cdc_config), "", "CDC config. If not set, CDC is not enabled", NULL},
    {"cluster-connect-timeout", F_DUR, O(cluster_connect_timeout_ms), "30s", "Timeout for initial connection to other nodes", NULL},
    {"compress-snap-transport", F_IGNORED, 0, "false", "Compress snapshots sent to other nodes", F_TODO},
    {"cpu-profile", F_IGNORED, 0, "", "Path to file for CPU profiling information", F_TODO},
    {"db-max-result-size", F_U64, O(db_max_result_size), "268435456", "Largest JSON result of one statement, in bytes, before it fails with 'result too large' (0: no limit)", NULL},
    {"db-max-ro-conns", F_INT, O(db_max_ro_conns), "256", "Maximum number of read-only connections to the database (0 means unlimited)", NULL},
    {"db-max-write-steps", F_U64, O(db_max_write_steps), "250000000", "Most SQLite VM steps one write entry may take before its statements fail with 'execute timeout' (counted alike on every node; about 1-6 s of work here; 0: no limit)", NULL},
    {"disco-config", F_STR, O(disco_config), "", "Set discovery config, or path to cluster discovery config file", NULL},
    {"disco-key", F_STR, O(disco_key), "rqlite", "Key prefix for cluster discovery service", NULL},
    {"disco-mode", F_STR, O(disco_mode), "", "Choose clustering discovery mode (dns, dns-srv). If not set, no node discovery is performed", NULL},
    {"extensions-path", F_STR, O(extensions_path), "", "Comma-delimited list of paths to directories, zipfiles, or tar.gz files containing SQLite extensions", NULL},
    {"fk", F_BOOL, O(fk), "false", "Enable SQLite foreign key constraints", NULL},
    {"http-addr", F_STR, O(http_addr), "localhost:4001", "HTTP server bind address. To enable HTTPS, set X.509 certificate and key", NULL},
    {"http-adv-addr", F_STR, O(http_adv_addr), "", "Advertised HTTP address. If not set, same as HTTP server bind address", NULL},
    {"http-allow-origin", F_STR, O(http_allow_origin), "", "Value to set for Access-Control-Allow-Origin HTTP header", NULL},
    {"http-ca-cert", F_STR, O(http_ca_cert), "", "Path to X.509 CA certificate for HTTPS", NULL},
    {"http-cert", F_STR, O(http_cert), "", "Path to HTTPS X.509 certificate", NULL},
    {"http-key", F_STR, O(http_key), "", "Path to HTTPS X.509 private key", NULL},
    {"http-max-body-size", F_U64, O(http_max_body_size), "67108864", "Largest HTTP request body accepted, in bytes (larger: 413); 0 means no limit", NULL},
    {"http-max-conns", F_INT, O(http_max_conns), "1024", "Most HTTP connections served at once (more: 503); 0 means no cap", NULL},
    {"http-request-timeout", F_DUR, O(http_request_timeout_ms), "60s", "Time a client has to send a whole request, and most time a connection may sit idle between requests (absolute, not reset by each byte); 0 means none", NULL},
    {"http-verify-client", F_BOOL, O(http_verify_client), "false", "Enable mutual TLS for HTTPS", NULL},
    {"http-verify-common-name", F_STR, O(http_verify_common_name), "", "Require the client certificate to have this Common Name", NULL},
    {"join", F_JOIN, 0, "", "Comma-delimited list of nodes, in host:port form, through which a cluster can be joined", NULL},
    {"join-as", F_STR, O(join_as), "", "Username in authentication file to join as. If not set, joins anonymously", NULL},
    {"join-attempts", F_INT, O(join_attempts), "5", "Number of join attempts to make", NULL},
    {"join-interval", F_DUR, O(join_interval_ms), "3s", "Period between join attempts", NULL},
    {"mem-profile", F_IGNORED, 0, "", "Path to file for memory profiling information", F_TODO},
    {"node-ca-cert", F_STR, O(node_ca_cert), "", "Path to X.509 CA certificate for node-to-node encryption", NULL},
    {"node-cert", F_STR, O(node_cert), "", "Path to X.509 certificate for node-to-node mutual authentication and encryption", NULL},
    {"node-id", F_STR, O(node_id), "", "Unique ID for node. If not set, set to advertised Raft address", NULL},
    {"node-key", F_STR, O(node_key), "", "Path to X.509 private key for node-to-node mutual authentication and encryption", NULL},
    {"node-no-verify", F_BOOL, O(node_no_verify), "false", "Skip verification of any node-node certificate", NULL},
    {"node-verify-client", F_BOOL, O(node_verify_client), "false", "Enable mutual TLS for node-to-node communication", NULL},
    {"node-verify-common-name", F_STR, O(node_verify_common_name), "", "Require the peer certificate to have this Common Name", NULL},
    {"node-verify-server-name", F_STR, O(node_verify_server_name), "", "Hostname to verify on certificate returned by a node", NULL},
    {"otlp-ca-cert", F_STR, O(otlp_ca_cert), "", "Path to X.509 CA certificate for the OTLP collector", F_TODO},
    {"otlp-cert", F_STR, O(otlp_cert), "", "Path to X.509 client certificate for the OTLP collector", F_TODO},
    {"otlp-endpoint", F_STR, O(otlp_endpoint), "", "OpenTelemetry collector endpoint (host:port)", F_TODO},
    {"otlp-insecure", F_BOOL, O(otlp_insecure), "false", "Connect to the OTLP collector without TLS", F_TODO},
    {"otlp-interval", F_DUR, O(otlp_interval_ms), "30s", "Period between OTLP metric exports", F_TODO},
    {"otlp-key", F_STR, O(otlp_key), "", "Path to X.509 client key for the OTLP collector", F_TODO},
    {"otlp-no-verify", F_BOOL, O(otlp_no_verify), "false", "Skip verification of the OTLP collector's certificate", F_TODO},
    {"raft-addr", F_STR, O(raft_addr), "localhost:4002", "Raft communication bind address", NULL},
    {"raft-adv-addr", F_STR, O(raft_adv_addr), "", "Advertised Raft communication address. If not set, same as Raft bind address", NULL},
    {"raft-apply-timeout", F_DUR, O(raft_apply_timeout_ms), "10s", "Raft apply timeout", NULL},
    {"raft-cluster-remove-shutdown", F_BOOL, O(raft_cluster_remove_shutdown), "false", "Node removes itself from cluster on graceful shutdown", NULL},
    {"raft-commit-timeout", F_DUR, O(raft_commit_timeout_ms), "50ms", "Raft commit timeout", NULL},
    {"raft-election-timeout", F_DUR, O(raft_election_timeout_ms), "1s", "Raft election timeout", NULL},
    {"raft-heartbeat-timeout", F_DUR, O(raft_heartbeat_timeout_ms), "1s", "Raft heartbeat timeout", NULL},
    {"raft-leader-lease-timeout", F_DUR, O(raft_leader_lease_timeout_ms), "0s", "Raft leader lease timeout. Use 0s for Raft default", NULL},
    {"raft-log-level", F_STR, O(raft_log_level), "WARN", "Minimum log level for Raft module", NULL},
    {"log-level", F_STR, O(log_level), "INFO", "Minimum log level for everything but Raft: DEBUG (also each request), INFO, WARN, ERROR or OFF", NULL},
    {"raft-max-entry-size", F_U64, O(raft_max_entry_size), "67108864", "Largest Raft log entry a request may make, in bytes (larger: 413)", NULL},
    {"raft-non-voter", F_BOOL, O(raft_non_voter), "false", "Configure as non-voting node", NULL},
    {"raft-reap-node-timeout", F_DUR, O(raft_reap_node_timeout_ms), "0s", "Time after which a non-reachable voting node will be reaped. If not set, no reaping takes place", NULL},
    {"raft-reap-read-only-node-timeout", F_DUR, O(raft_reap_read_only_node_timeout_ms), "0s", "Time after which a non-reachable non-voting node will be reaped. If not set, no reaping takes place", NULL},
    {"raft-remove-shutdown", F_BOOL, O(raft_remove_shutdown), "false", "Shutdown Raft if node removed from cluster", NULL},
    {"raft-shutdown-stepdown", F_BOOL, O(raft_shutdown_stepdown), "true", "If leader, stepdown before shutting down. Enabled by default", NULL},
    {"raft-snap", F_U64, O(raft_snap), "8192", "Number of outstanding log entries which triggers Raft snapshot", NULL},
    {"raft-snap-int", F_DUR, O(raft_snap_int_ms), "10s", "Snapshot threshold check interval", NULL},
    {"raft-snap-wal-size", F_U64, O(raft_snap_wal_size), "4194304", "SQLite WAL file size in bytes which triggers Raft snapshot. Set to 0 to disable", NULL},
    /* v6-v9 name of -raft-heartbeat-timeout, still used by the seed's era. */
    {"raft-timeout", F_DUR, O(raft_heartbeat_timeout_ms), "1s", "Raft heartbeat timeout (old name of -raft-heartbeat-timeout)", NULL},
    {"trace-profile", F_IGNORED, 0, "", "Path to file for trace profiling information", F_TODO},
    {"write-queue-batch-size", F_INT, O(write_queue_batch_size), "128", "Write queue batch size", NULL},
    {"write-queue-capacity", F_INT, O(write_queue_capacity), "1024", "Write queue capacity", NULL},
    {"write-queue-timeout", F_DUR, O(write_queue_timeout_ms), "50ms", "Write queue timeout", NULL},
    {"write-queue-tx", F_BOOL, O(write_queue_tx), "false", "Use a transaction when processing a queued write", NULL},
};

#define N_FLAGS (sizeof flags / sizeof flags[0])

static const char *blurb =
    "\n"
    "rqlite is a lightweight, distributed relational database, which uses SQLite as its\n"
    "storage engine. It provides an easy-to-use, fault-tolerant store for relational data.\n"
    "\n"
    "Visit https://www.rqlite.io to learn more.";

/* ---- durations ------------------------------------------------------- */

int config_parse_duration_ns(const char *s, uint64_t *ns)
{
    int64_t v;
    if (rq_duration_parse(s, &v, NULL, 0) != 0 || v < 0)
        return -1;
    *ns = (uint64_t)v;
    return 0;
}

int config_parse_duration(const char *s, uint64_t *ms)
{
    uint64_t ns;
    if (config_parse_duration_ns(s, &ns) != 0)
        return -1;
    *ms = (ns + 500000) / 1000000;
    return 0;
}

/* ---- setting values ---------------------------------------------------- */

/* Go's strconv.ParseBool: the spellings rqlite's flags accept. */
static int parseBool(const char *v, bool *out)
{
    static const char *t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *f[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(v, t[i]) == 0) { *out = true; return 0; }
        if (strcmp(v, f[i]) == 0) { *out = false; return 0; }
    }
    return -1;
}

/* -join is comma-separated; blanks around items are dropped, as rqlite does. */
static void setJoin(config *cfg, const char *v)
{
    for (int i = 0; i < cfg->n_join; i++)
        free(cfg->join[i]);
    cfg->n_join = 0;
    const char *p = v;
    while (*p && cfg->n_join < CONFIG_MAX_JOIN) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n && isspace((unsigned char)*p)) { p++; n--; }
        while (n && isspace((unsigned char)p[n - 1])) n--;
        if (n)
            cfg->join[cfg->n_join++] = strndup(p, n);
        if (!comma)
            break;
        p = comma + 1;
    }
}

/* Returns 0, or -1 with a Go-style message in msg. */
static int setFlag(config *cfg, const flag_def *f, const char *v, char *msg, size_t msglen)
{
    char *base = (char *)cfg;
    switch (f->kind) {
    case F_STR: {
        char **dst = (char **)(base + f->off);
        free(*dst);
        *dst = strdup(v);
        return 0;
    }
    case F_BOOL:
        if (parseBool(v, (bool *)(base + f->off)) == 0)
            return 0;
        snprintf(msg, msglen, "invalid boolean value \"%s\" for -%s: parse error", v, f->name);
        return -1;
    case F_INT: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 0);
        if (*v && !*end && !errno && n >= INT_MIN && n <= INT_MAX) {
            *(int *)(base + f->off) = (int)n;
            return 0;
        }
        snprintf(msg, msglen, "invalid value \"%s\" for flag -%s: parse error", v, f->name);
        return -1;
    }
    case F_U64: {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 0);
        if (*v && *v != '-' && !*end && !errno) {
            *(uint64_t *)(base + f->off) = n;
            return 0;
        }
        snprintf(msg, msglen, "invalid value \"%s\" for flag -%s: parse error", v, f->name);
        return -1;
    }
    case F_DUR:
        if (config_parse_duration(v, (uint64_t *)(base + f->off)) == 0)
            return 0;
        snprintf(msg, msglen, "invalid value \"%s\" for flag -%s: parse error", v, f->name);
        return -1;
    case F_JOIN:
        setJoin(cfg, v);
        return 0;
    case F_IGNORED:
        return 0;
    }
    return 0;
}

/* Go's flag.PrintDefaults layout, so that -h reads like rqlited's. */
static void usage(FILE *out)
{
    fprintf(out, "%s\n\nUsage: rqlited [flags] <data directory>\n", blurb);
    for (size_t i = 0; i < N_FLAGS; i++) {
        const flag_def *f = &flags[i];
        const char *type = f->kind == F_STR || f->kind == F_JOIN ? " string"
                         : f->kind == F_INT ? " int"
                         : f->kind == F_U64 ? " uint"
                         : f->kind == F_DUR ? " duration"
                         : "";
        fprintf(out, "  -%s%s\n    \t%s", f->name, type, f->usage);
        bool zero = f->def[0] == '\0' || strcmp(f->def, "false") == 0 || strcmp(f->def, "0") == 0;
        if (!zero) {
            if (f->kind == F_STR || f->kind == F_JOIN)
                fprintf(out, " (default \"%s\")", f->def);
            else
                fprintf(out, " (default %s)", f->def);
        }
        fputc('\n', out);
    }
}

/* Flags are matched whole: -raft-snap is not -raft-snap-int. */
static const flag_def *findFlag(const char *name, size_t n)
{
    for (size_t i = 0; i < N_FLAGS; i++)
        if (strlen(flags[i].name) == n && strncmp(flags[i].name, name, n) == 0)
            return &flags[i];
    return NULL;
}

/* The data directory is logged and compared later: make it absolute, ~ expanded. */
static char *absPath(const char *p)
{
    if (p[0] == '/')
        return strdup(p);
    if (p[0] == '~' && (p[1] == '/' || p[1] == '\0') && getenv("HOME")) {
        char *r;
        if (asprintf(&r, "%s%s", getenv("HOME"), p + 1) < 0)
            return NULL;
        return r;
    }
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == NULL)
        return strdup(p);
    char *r;
    const char *rest = p;
    while (strncmp(rest, "./", 2) == 0)
        rest += 2;
    if (strcmp(rest, ".") == 0)
        return strdup(cwd);
    if (asprintf(&r, "%s/%s", cwd, rest) < 0)
        return NULL;
    size_t n = strlen(r);
    while (n > 1 && r[n - 1] == '/')
        r[--n] = '\0';
    return r;
}

/* host:port with a numeric port. */
static bool validHostPort(const char *a)
{
    return addr_port(a) >= 0;
}

static bool unspecifiedHost(const char *a)
{
    return strncmp(a, "0.0.0.0:", 8) == 0 || strncmp(a, "[::]:", 5) == 0 || a[0] == ':';
}

/* rqlited's 'fatal: ...' line and exit status 1 for invalid settings. */
static int fatal(config *cfg, int *exit_code, const char *fmt, const char *arg)
{
    fputs("fatal: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    *exit_code = 1;
    config_free(cfg);
    return 1;
}

/* The timer settings hashicorp raft refuses (its ValidateConfig), which
 * stop rqlite at start with these messages. A lease or interval of 0 asks
 * for the default, which is not checked: here the lease is then libraft's
 * own rule (README). */
static int validateRaftTimers(config *cfg, int *exit_code)
{
    const char *why = NULL;
    uint64_t lease = cfg->raft_leader_lease_timeout_ms;
    if (cfg->raft_snap_int_ms != 0 && cfg->raft_snap_int_ms < 5)
        why = "SnapshotInterval is too low";
    else if (lease != 0 && lease < 5)
        why = "LeaderLeaseTimeout is too low";
    else if (lease != 0 && lease > cfg->raft_heartbeat_timeout_ms)
        why = "LeaderLeaseTimeout cannot be larger than heartbeat timeout";
    if (why == NULL)
        return 0;
    return fatal(cfg, exit_code, "failed to open store: creating the raft system failed: %s", why);
}

/* rqlite's check of -extensions-path: each comma-separated entry (none
 * trimmed, so an empty one fails) must exist. What they hold is checked
 * when main installs them (ext/ext.h). */
static int extensionPathsExist(config *cfg, int *exit_code)
{
    if (cfg->extensions_path == NULL || *cfg->extensions_path == '\0')
        return 0;
    char *list = strdup(cfg->extensions_path);
    for (char *p = list, *next;; p = next + 1) {
        next = strchr(p, ',');
        if (next)
            *next = '\0';
        struct stat sb;
        if (stat(p, &sb) != 0) {
            fatal(cfg, exit_code, "extension path does not exist: %s", p);
            free(list);
            return 1;
        }
        if (next == NULL)
            break;
    }
    free(list);
    return 0;
}

/* rqlite's checks of the settings together, with its messages. */
static int validate(config *cfg, int *exit_code)
{
    int rc;
    if ((cfg->http_cert && *cfg->http_cert) != (cfg->http_key && *cfg->http_key))
        return fatal(cfg, exit_code, "%s", "either both -http-cert and -http-key must be set, or neither");
    if ((cfg->node_cert && *cfg->node_cert) != (cfg->node_key && *cfg->node_key))
        return fatal(cfg, exit_code, "%s", "either both -node-cert and -node-key must be set, or neither");
    if (cfg->node_verify_common_name && *cfg->node_verify_common_name && !cfg->node_verify_client)
        return fatal(cfg, exit_code, "%s", "-node-verify-common-name requires -node-verify-client");
    if (!(cfg->node_cert && *cfg->node_cert)) {
        /* rqlite would dial with TLS but serve plaintext here: a node that
         * cannot talk to its peers, while its operator believes it encrypts. */
        const char *f = cfg->node_ca_cert && *cfg->node_ca_cert                       ? "-node-ca-cert"
                        : cfg->node_verify_client                                     ? "-node-verify-client"
                        : cfg->node_verify_server_name && *cfg->node_verify_server_name ? "-node-verify-server-name"
                        : cfg->node_no_verify                                         ? "-node-no-verify"
                                                                                      : NULL;
        if (f)
            return fatal(cfg, exit_code, "%s requires -node-cert and -node-key (node-to-node TLS is off without them)", f);
    }
    if (cfg->http_verify_common_name && *cfg->http_verify_common_name && !cfg->http_verify_client)
        return fatal(cfg, exit_code, "%s", "-http-verify-common-name requires -http-verify-client");
    /* rqlite would serve plain HTTP and ignore the flag: a node that is
     * asked to verify its clients does not start without HTTPS instead. */
    if (cfg->http_verify_client && !(cfg->http_cert && *cfg->http_cert))
        return fatal(cfg, exit_code, "%s", "-http-verify-client requires -http-cert and -http-key");
    if (strcmp(cfg->http_addr, cfg->raft_addr) == 0)
        return fatal(cfg, exit_code, "%s", "HTTP and Raft addresses must differ");
    if (strncmp(cfg->http_addr, "http", 4) == 0 || strncmp(cfg->http_adv_addr, "http", 4) == 0)
        return fatal(cfg, exit_code, "%s", "HTTP options should not include protocol (http:// or https://)");
    if (!validHostPort(cfg->http_addr))
        return fatal(cfg, exit_code, "%s", "HTTP bind address not valid");
    if (!validHostPort(cfg->http_adv_addr))
        return fatal(cfg, exit_code, "%s", "advertised HTTP address not valid");
    if (unspecifiedHost(cfg->http_adv_addr))
        return fatal(cfg, exit_code, "%s",
                     "advertised HTTP address is not routable (0.0.0.0), specify it via -http-addr or -http-adv-addr");
    if (!validHostPort(cfg->raft_addr))
        return fatal(cfg, exit_code, "%s", "raft bind address not valid");
    if (!validHostPort(cfg->raft_adv_addr))
        return fatal(cfg, exit_code, "%s", "raft advertised address not valid");
    if (unspecifiedHost(cfg->raft_adv_addr))
        return fatal(cfg, exit_code, "%s",
                     "advertised Raft address is not routable (0.0.0.0), specify it via -raft-addr or -raft-adv-addr");
    if (strcmp(cfg->http_adv_addr, cfg->raft_adv_addr) == 0)
        return fatal(cfg, exit_code, "%s", "advertised HTTP and Raft addresses must differ");
    /* rqlite joins anonymously then; the password can only come from the
     * credentials file, so asking for it without one is a mistake. */
    if (cfg->join_as && *cfg->join_as && !(cfg->auth && *cfg->auth))
        return fatal(cfg, exit_code, "%s", "-join-as requires -auth: the user's password is read from that file");
    if ((rc = extensionPathsExist(cfg, exit_code)) != 0)
        return rc;
    if ((cfg->otlp_cert && *cfg->otlp_cert) != (cfg->otlp_key && *cfg->otlp_key))
        return fatal(cfg, exit_code, "%s", "either both -otlp-cert and -otlp-key must be set, or neither");
    if (!(cfg->otlp_endpoint && *cfg->otlp_endpoint)) {
        if (cfg->otlp_insecure || cfg->otlp_no_verify || (cfg->otlp_ca_cert && *cfg->otlp_ca_cert) ||
            (cfg->otlp_cert && *cfg->otlp_cert))
            return fatal(cfg, exit_code, "%s", "OTLP options require -otlp-endpoint");
    } else {
        if (strstr(cfg->otlp_endpoint, "://"))
            return fatal(cfg, exit_code, "%s", "-otlp-endpoint must not include a protocol scheme");
        if (!validHostPort(cfg->otlp_endpoint))
            return fatal(cfg, exit_code, "%s", "-otlp-endpoint is not a valid address");
        if (cfg->otlp_interval_ms == 0)
            return fatal(cfg, exit_code, "%s", "-otlp-interval must be greater than zero");
        if (cfg->otlp_insecure &&
            (cfg->otlp_no_verify || (cfg->otlp_ca_cert && *cfg->otlp_ca_cert) || (cfg->otlp_cert && *cfg->otlp_cert)))
            return fatal(cfg, exit_code, "%s", "-otlp-insecure cannot be used with other OTLP TLS options");
    }
    static const struct {
        const char *name;
        int level;
    } levels[] = {{"trace", CONFIG_LOG_TRACE}, {"debug", CONFIG_LOG_DEBUG}, {"info", CONFIG_LOG_INFO},
                  {"warn", CONFIG_LOG_WARN},   {"warning", CONFIG_LOG_WARN}, {"error", CONFIG_LOG_ERROR},
                  {"off", CONFIG_LOG_OFF}};
    size_t lv = 0;
    while (lv < sizeof levels / sizeof levels[0] && strcasecmp(cfg->raft_log_level, levels[lv].name) != 0)
        lv++;
    if (lv == sizeof levels / sizeof levels[0])
        return fatal(cfg, exit_code, "invalid -raft-log-level %s: use TRACE, DEBUG, INFO, WARN, ERROR or OFF",
                     cfg->raft_log_level);
    cfg->raft_log = levels[lv].level;
    lv = 0;
    while (lv < sizeof levels / sizeof levels[0] && strcasecmp(cfg->log_level, levels[lv].name) != 0)
        lv++;
    if (lv == sizeof levels / sizeof levels[0] || levels[lv].level == CONFIG_LOG_TRACE)
        return fatal(cfg, exit_code, "invalid -log-level %s: use DEBUG, INFO, WARN, ERROR or OFF", cfg->log_level);
    cfg->log = levels[lv].level;
    if (cfg->raft_non_voter && cfg->cdc_config && *cfg->cdc_config)
        return fatal(cfg, exit_code, "%s", "CDC cannot be enabled on non-voting nodes");
    if (cfg->raft_non_voter && cfg->bootstrap_expect > 0)
        return fatal(cfg, exit_code, "%s", "bootstrapping only applicable to voting nodes");
    if (cfg->bootstrap_expect > 1 && cfg->n_join == 0 && !(cfg->disco_mode && *cfg->disco_mode))
        return fatal(cfg, exit_code, "%s", "bootstrap-expect requires join addresses (-join)");
    for (int i = 0; i < cfg->n_join; i++) {
        const char *j = cfg->join[i];
        const char *hp = j;
        bool url = true;
        if (strncmp(hp, "http://", 7) == 0)
            hp += 7;
        else if (strncmp(hp, "https://", 8) == 0)
            hp += 8;
        else
            url = false;
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", hp);
        char *slash = strchr(tmp, '/');
        if (slash)
            *slash = '\0';
        /* A URL may leave its port out (80, 443); rqlite's check, Go's
         * SplitHostPort, passes "http://host" too, and the node then tries
         * to join there. */
        if (!validHostPort(tmp) && !(url && *tmp && !strchr(tmp, ':')))
            return fatal(cfg, exit_code, "%s is an invalid join address", j);
        if (cfg->bootstrap_expect == 0 &&
            (strcmp(tmp, cfg->raft_adv_addr) == 0 || strcmp(tmp, cfg->http_adv_addr) == 0))
            return fatal(cfg, exit_code, "%s", "node cannot join with itself unless bootstrapping");
        if (cfg->bootstrap_expect == 0 && cfg->auto_restore && *cfg->auto_restore)
            return fatal(cfg, exit_code, "%s", "auto-restoring cannot be used when joining a cluster");
    }
    return 0;
}

/* Security flags naming files, which must be readable, and those this
 * build parses but does not implement yet (none at present), with what a
 * node started with one would be running without. Starting anyway would
 * leave the node open to everyone while its operator believes it is not. */
static const struct {
    const char *name;
    bool file;           /* names a file: it must be readable (reported first) */
    const char *missing; /* what the node would run without; NULL: implemented */
} secure_flags[] = {
    {"auth", true, NULL},
    {"http-cert", true, NULL},
    {"http-key", true, NULL},
    {"http-ca-cert", true, NULL},
    {"node-cert", true, NULL},
    {"node-key", true, NULL},
    {"node-ca-cert", true, NULL},
};

/* The value of security flag f if it asks for security (a non-empty string,
 * or "true" for a boolean), else NULL. */
static const char *securityAsked(const config *cfg, const flag_def *f)
{
    const char *base = (const char *)cfg;
    if (f->kind == F_BOOL)
        return *(const bool *)(base + f->off) ? "true" : NULL;
    const char *v = *(char *const *)(base + f->off);
    return v && *v ? v : NULL;
}

/* Can the file at path be read? Opens it and reads a byte, so that a
 * directory (EISDIR) fails as well as a missing or forbidden file. */
static int readable(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -1;
    char c;
    ssize_t n = read(fd, &c, 1);
    int e = errno;
    close(fd);
    errno = e;
    return n < 0 ? -1 : 0;
}

/* Refuse to start on any security flag that asks for security (see
 * config.h): unreadable files first, so the message is about the file. */
static int checkSecurity(config *cfg, int *exit_code)
{
    const size_t n = sizeof secure_flags / sizeof secure_flags[0];
    for (size_t i = 0; i < n; i++) {
        const flag_def *f = findFlag(secure_flags[i].name, strlen(secure_flags[i].name));
        const char *v = securityAsked(cfg, f);
        if (v && secure_flags[i].file && readable(v) != 0) {
            fprintf(stderr, "fatal: cannot read -%s file %s: %s\n", f->name, v, strerror(errno));
            *exit_code = 1;
            config_free(cfg);
            return 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const flag_def *f = findFlag(secure_flags[i].name, strlen(secure_flags[i].name));
        if (secure_flags[i].missing && securityAsked(cfg, f)) {
            fprintf(stderr, "fatal: -%s is not supported by this build yet: refusing to start without %s\n",
                    f->name, secure_flags[i].missing);
            *exit_code = 1;
            config_free(cfg);
            return 1;
        }
    }
    return 0;
}

/* Every flag starts from its documented default, from the one table. */
static void setDefaults(config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    char msg[256];
    for (size_t i = 0; i < N_FLAGS; i++) {
        const flag_def *f = &flags[i];
        if (f->kind == F_IGNORED || f->kind == F_JOIN)
            continue;
        if (strcmp(f->name, "raft-timeout") == 0)
            continue; /* alias: -raft-heartbeat-timeout set the default */
        if (f->kind == F_STR && f->def[0] == '\0')
            continue; /* NULL means unset */
        setFlag(cfg, f, f->def, msg, sizeof msg);
    }
}

/* Exit for a bad command line: the usage on stderr when asked, status 1. */
static int badArgs(config *cfg, int *exit_code, bool show_usage)
{
    if (show_usage)
        usage(stderr);
    *exit_code = 1;
    config_free(cfg);
    return -1;
}

/* -version prints rqlited's line, naming this build and SQLite. */
static void printVersion(void)
{
    printf("rqlited %s linux/%s C sqlite%s\n", RQ_VERSION,
#if defined(__x86_64__)
           "amd64",
#elif defined(__aarch64__)
           "arm64",
#else
           "unknown",
#endif
           SQLITE_VERSION);
}

/* Parse the flag at argv[*i] (Go's rules). Returns 0 to go on, 1 when the
 * flags have ended (*i is the first positional argument), -1 when the
 * process must exit (-h, -version, a bad flag: *exit_code set, cfg freed). */
static int parseFlag(config *cfg, int argc, char **argv, int *i, bool *set, int *exit_code)
{
    const char *a = argv[*i];
    if (a[0] != '-' || a[1] == '\0')
        return 1;
    const char *name = a + 1;
    if (*name == '-' && *++name == '\0') { /* "--" ends the flags */
        (*i)++;
        return 1;
    }
    if (*name == '-' || *name == '=') {
        fprintf(stderr, "bad flag syntax: %s\n", a);
        return badArgs(cfg, exit_code, true);
    }
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    if ((nlen == 1 && name[0] == 'h') || (nlen == 4 && strncmp(name, "help", 4) == 0)) {
        usage(stdout);
        config_free(cfg);
        return -1;
    }
    if (nlen == 7 && strncmp(name, "version", 7) == 0) {
        printVersion();
        config_free(cfg);
        return -1;
    }
    const flag_def *f = findFlag(name, nlen);
    if (f == NULL) {
        fprintf(stderr, "flag provided but not defined: -%.*s\n", (int)nlen, name);
        return badArgs(cfg, exit_code, true);
    }
    const char *val;
    if (eq) {
        val = eq + 1;
    } else if (f->kind == F_BOOL || (f->kind == F_IGNORED && strcmp(f->def, "false") == 0)) {
        val = "true";
    } else if (*i + 1 < argc) {
        val = argv[++*i];
    } else {
        fprintf(stderr, "flag needs an argument: -%s\n", f->name);
        return badArgs(cfg, exit_code, true);
    }
    char msg[512];
    if (setFlag(cfg, f, val, msg, sizeof msg) != 0) {
        fprintf(stderr, "%s\n", msg);
        return badArgs(cfg, exit_code, true);
    }
    set[f - flags] = true;
    return 0;
}

/* The data directory: the one positional argument, argv[i]. */
static int dataDir(config *cfg, int argc, char **argv, int i, int *exit_code)
{
    if (argc <= 1) {
        fprintf(stderr, "fatal: failed to parse command-line flags: missing required argument: DataPath\n");
        return badArgs(cfg, exit_code, false);
    }
    if (i >= argc) {
        fprintf(stderr, "fatal: data directory path is required\n");
        return badArgs(cfg, exit_code, false);
    }
    if (i + 1 < argc) {
        char rest[1024] = "";
        size_t n = 0;
        for (int j = i + 1; j < argc && n < sizeof rest - 1; j++)
            n += (size_t)snprintf(rest + n, sizeof rest - n, "%s%s", j > i + 1 ? " " : "", argv[j]);
        fprintf(stderr, "fatal: arguments after data directory (%s) are not accepted ([%s])\n", argv[i], rest);
        return badArgs(cfg, exit_code, false);
    }
    cfg->data_dir = absPath(argv[i]);
    return 0;
}

/* Advertised addresses default to the bind ones, the node ID to the
 * advertised Raft address (rqlite's rules). */
static void derivedDefaults(config *cfg)
{
    if (cfg->http_adv_addr == NULL || !*cfg->http_adv_addr) {
        free(cfg->http_adv_addr);
        cfg->http_adv_addr = strdup(cfg->http_addr);
    }
    if (cfg->raft_adv_addr == NULL || !*cfg->raft_adv_addr) {
        free(cfg->raft_adv_addr);
        cfg->raft_adv_addr = strdup(cfg->raft_addr);
    }
    if (cfg->node_id == NULL || !*cfg->node_id) {
        free(cfg->node_id);
        cfg->node_id = strdup(cfg->raft_adv_addr);
    }
    if (asprintf(&cfg->http_api_url, "%s://%s", config_https(cfg) ? "https" : "http", cfg->http_adv_addr) < 0)
        cfg->http_api_url = NULL;
}

bool config_https(const config *cfg)
{
    return cfg->http_cert && *cfg->http_cert && cfg->http_key && *cfg->http_key;
}

int config_parse(config *cfg, int argc, char **argv, int *exit_code)
{
    setDefaults(cfg);
    *exit_code = 0;
    bool set[N_FLAGS] = {false};
    int i = 1, rc = 0;
    for (; i < argc && (rc = parseFlag(cfg, argc, argv, &i, set, exit_code)) == 0; i++)
        ;
    if (rc < 0)
        return 1;
    if (checkSecurity(cfg, exit_code) != 0)
        return 1;
    if (dataDir(cfg, argc, argv, i, exit_code) != 0)
        return 1;
    derivedDefaults(cfg);
    if (validate(cfg, exit_code) != 0 || validateRaftTimers(cfg, exit_code) != 0)
        return 1;
    for (size_t k = 0; k < N_FLAGS; k++) {
        if (set[k] && flags[k].note)
            fprintf(stderr, "warning: -%s %s\n", flags[k].name, flags[k].note);
    }
    return 0;
}

void config_free(config *cfg)
{
    char *base = (char *)cfg;
    for (size_t i = 0; i < N_FLAGS; i++)
        if (flags[i].kind == F_STR) {
            char **p = (char **)(base + flags[i].off);
            free(*p);
            *p = NULL;
        }
    for (int i = 0; i < cfg->n_join; i++) {
        free(cfg->join[i]);
        cfg->join[i] = NULL;
    }
    cfg->n_join = 0;
    free(cfg->data_dir);
    cfg->data_dir = NULL;
    free(cfg->http_api_url);
    cfg->http_api_url = NULL;
    for (int i = 0; i < cfg->n_extensions; i++)
        free(cfg->extensions[i]);
    free(cfg->extensions);
    cfg->extensions = NULL;
    cfg->n_extensions = 0;
    free(cfg->extensions_dir);
    cfg->extensions_dir = NULL;
}
