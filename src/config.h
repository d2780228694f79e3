/*
 * config: rqlited's command-line flags, with rqlite v10's names and defaults.
 *
 * Parsing follows Go's flag package: single or double dash, "-flag value" or
 * "-flag=value", booleans as "-flag" or "-flag=true"; parsing stops at the
 * first non-flag argument, which must be the data directory (the only
 * positional argument). Durations use Go syntax ("500ms", "3s", "2m0s", "0").
 *
 * This is the only process-wide state: it is filled once at start-up and is
 * read-only afterwards.
 */
#ifndef RQ_CONFIG_H
#define RQ_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define CONFIG_MAX_JOIN 16

/* -raft-log-level, from the most to the least said; the default, WARN, is
 * zero. */
enum {
    CONFIG_LOG_TRACE = -3,
    CONFIG_LOG_DEBUG = -2,
    CONFIG_LOG_INFO = -1,
    CONFIG_LOG_WARN = 0,
    CONFIG_LOG_ERROR = 1,
    CONFIG_LOG_OFF = 2
};

typedef struct config {
    char *data_dir;          /* absolute path of the positional argument */
    char *node_id;           /* -node-id; defaults to raft_adv_addr */
    char *http_addr;         /* -http-addr, "localhost:4001" */
    char *http_adv_addr;     /* -http-adv-addr, defaults to http_addr */
    char *http_api_url;      /* what the node advertises: "http://" or, with
                              * -http-cert and -http-key, "https://" + http_adv_addr */
    char *raft_addr;         /* -raft-addr, "localhost:4002" */
    char *raft_adv_addr;     /* -raft-adv-addr, defaults to raft_addr */
    char *join[CONFIG_MAX_JOIN]; /* -join, split on commas */
    int n_join;
    int join_attempts;       /* -join-attempts, 5 */
    uint64_t join_interval_ms;      /* -join-interval, 3s */
    char *disco_mode;        /* -disco-mode: "", "dns" or "dns-srv" (disco/) */
    char *disco_config;      /* -disco-config: JSON, or a file of it */
    char *disco_key;         /* -disco-key: KV modes only (not supported) */
    int bootstrap_expect;
    uint64_t bootstrap_expect_timeout_ms; /* 120s */
    bool fk;                 /* -fk */
    char *extensions_path;   /* -extensions-path, as given (comma-separated) */
    /* Not flags: what main installed from -extensions-path (ext/ext.h),
     * loaded into every SQLite connection and shown by /status; freed by
     * config_free. The directory is there even without the flag. */
    char *extensions_dir;    /* <data>/extensions */
    char **extensions;       /* its extension files, sorted by name */
    int n_extensions;
    int db_max_ro_conns;     /* 256 */
    uint64_t db_max_write_steps;   /* VM steps a write entry may take (deterministic bound) */
    uint64_t db_max_result_size;   /* bytes of one statement's JSON result */
    uint64_t http_max_body_size;   /* bytes; larger bodies get 413 */
    int http_max_conns;            /* connections served at once; more get 503 */
    uint64_t http_request_timeout_ms; /* absolute: receive a request / idle between requests */
    uint64_t raft_max_entry_size;  /* bytes; a request making a larger entry gets 413 */
    char *raft_log_level;    /* "WARN" */
    char *log_level;         /* "INFO": -log-level, beyond rqlite */
    int log;                 /* CONFIG_LOG_*, from log_level */
    int raft_log;            /* it as CONFIG_LOG_*: what libraft and the
                              * [raft] lines log (store/store.c) */
    bool raft_non_voter;
    uint64_t raft_snap;      /* -raft-snap, 8192 entries */
    uint64_t raft_snap_wal_size;     /* 4194304 */
    uint64_t raft_snap_int_ms;       /* 10s */
    uint64_t raft_leader_lease_timeout_ms; /* 0 */
    uint64_t raft_heartbeat_timeout_ms;    /* 1s; also accepted as -raft-timeout */
    uint64_t raft_commit_timeout_ms;       /* 50ms */
    uint64_t raft_election_timeout_ms;     /* 1s */
    uint64_t raft_apply_timeout_ms;        /* 10s */
    bool raft_remove_shutdown;
    bool raft_cluster_remove_shutdown;
    bool raft_shutdown_stepdown;           /* true */
    uint64_t auto_optimize_int_ms;         /* 24h; 0 disables */
    uint64_t auto_vacuum_int_ms;           /* 0 disables; VACUUM at snapshots */
    uint64_t raft_reap_node_timeout_ms;
    uint64_t raft_reap_read_only_node_timeout_ms;
    uint64_t cluster_connect_timeout_ms;   /* 30s */
    int write_queue_capacity;              /* 1024 */
    int write_queue_batch_size;            /* 128 */
    uint64_t write_queue_timeout_ms;       /* 50ms */
    bool write_queue_tx;
    char *http_allow_origin;
    char *auto_backup;       /* -auto-backup, -auto-restore: rqlite's JSON */
    char *auto_restore;      /* configuration files (backup/backup.h) */
    /* HTTPS (http/tls.c): the server's certificate and key, re-read when
     * they change; the CA that client certificates must chain to with
     * -http-verify-client (system roots without it), and that verifies
     * other nodes' HTTPS APIs (cluster/cluster.c). */
    char *http_cert, *http_key, *http_ca_cert;
    bool http_verify_client;
    char *http_verify_common_name; /* required client CN; needs http_verify_client */
    char *auth;              /* -auth: the credentials file */
    char *join_as;           /* -join-as: the user (in that file) this node's own requests go as */
    /* The credentials loaded from -auth (auth/auth.h), NULL without it. Not a
     * flag: main.c loads it after config_parse, before anything starts, and
     * owns it; the modules given cfg check requests with it (http) and take
     * -join-as's password from it (cluster). */
    struct auth *creds;
    /* OpenTelemetry export: parsed and checked as rqlite does, not
     * implemented (a warning at start-up says so). */
    char *otlp_endpoint, *otlp_ca_cert, *otlp_cert, *otlp_key;
    bool otlp_insecure, otlp_no_verify;
    uint64_t otlp_interval_ms;
    /* Node-to-node TLS: all traffic on the Raft port when node_cert is set. */
    char *node_cert, *node_key, *node_ca_cert;
    bool node_verify_client, node_no_verify;
    char *node_verify_common_name, *node_verify_server_name;
    /* Built by main from the node_* flags once parsed (NULL: the Raft port
     * is plaintext), for the store's transport and the cluster client;
     * main owns it (tls_ctx_free, not config_free). */
    struct tls_ctx *node_tls;
    char *cdc_config;        /* -cdc-config: "stdout", a URL or a JSON file (cdc/cdc.h) */
    /* Built by main from it before the store opens (NULL: CDC off); the
     * store captures into it, the Raft port passes it high-water marks,
     * /status and /debug/vars show it. main owns it (cdc_close). */
    struct cdc_service *cdc;
} config;

/* Parse argv into cfg (argv[0] is the program name). Returns 0 when the node
 * should start. Returns 1 when the process must exit instead (-h, -version,
 * bad flags): what rqlite prints has been printed (usage, "fatal: ..." on
 * stderr) and *exit_code is set (0 for -h/-version, 1 for an unknown or malformed flag,
 * and 1 for validation errors). Flags rqlite has but we do not implement yet are
 * accepted and reported on stderr at start-up, never silently ignored.
 *
 * Security never fails open: a security flag this build does not implement
 * (none left) that asks for security (a non-empty value, or true) makes
 * it return 1 with exit code 1, before anything binds a port or touches
 * the data directory, and so does a file flag (-auth, -node-cert
 * included) naming a file that cannot be read:
 *   fatal: cannot read -auth file PATH: REASON        (a file flag, checked first)
 * An empty value or false (-node-cert "", -node-verify-client=false) is
 * accepted. -join-as needs -auth. What the -auth file says is checked by
 * main.c (auth_open). Files named by -http-cert, -http-key, -http-ca-cert
 * must be readable too; -http-cert without -http-key (or the reverse),
 * -http-verify-common-name without -http-verify-client, and
 * -http-verify-client without HTTPS are refused as well. Node TLS is on
 * only with -node-cert and -node-key (both or neither); any other -node-*
 * TLS flag without them is refused (the node would run in plaintext while
 * asked for more), and so is -node-verify-common-name without
 * -node-verify-client. */
int config_parse(config *cfg, int argc, char **argv, int *exit_code);
void config_free(config *cfg);

/* Does the node serve HTTPS (-http-cert and -http-key both set)? */
bool config_https(const config *cfg);

/* Parse a Go duration ("1h2m3.5s", "500ms", "500us", "0"; util/duration.h)
 * that is not negative; returns 0 and sets *ms (rounded to the nearest
 * millisecond) or *ns, else -1. */
int config_parse_duration(const char *s, uint64_t *ms);
int config_parse_duration_ns(const char *s, uint64_t *ns);

#endif
