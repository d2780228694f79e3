/*
 * fake_store.c: store.h over a local db, one process, no Raft, for testing
 * the HTTP layer. fake_store_set_leader() makes it a follower with or
 * without a known leader.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "metrics/metrics.h"

struct store {
    const config *cfg;
    db *d;
    bool leader;
    bool leader_known;
    char leader_api[300];
    int joins;          /* store_join calls */
};

void fake_store_set_leader(store *s, bool leader, bool known, const char *api);
int fake_store_joins(store *s);

int fake_store_joins(store *s) { return s->joins; }

void fake_store_set_leader(store *s, bool leader, bool known, const char *api)
{
    s->leader = leader;
    s->leader_known = known;
    snprintf(s->leader_api, sizeof s->leader_api, "%s", api ? api : "");
}

int store_open(const config *cfg, store **out, char **err)
{
    store *s = calloc(1, sizeof *s);
    s->cfg = cfg;
    s->leader = s->leader_known = true;
    char path[4200];
    snprintf(path, sizeof path, "%s/db.sqlite", cfg->data_dir);
    db_options o = {.fk = cfg->fk, .max_ro_conns = 8};
    if (db_open(path, &o, &s->d, err) != 0) {
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void store_close(store *s)
{
    db_close(s->d);
    free(s);
}

bool store_ready(store *s) { return s->leader_known; }
bool store_is_leader(store *s) { return s->leader; }
bool store_wait_leader(store *s, uint64_t timeout_ms) { return s->leader_known; }
int store_dump(store *s, const char *tables, buf *out, char **err) { return db_dump(s->d, tables, out, err); }
bool store_was_new(store *s) { return true; }
const char *store_node_id(store *s) { return s->cfg->node_id; }

static void self(store *s, store_node *n)
{
    memset(n, 0, sizeof *n);
    snprintf(n->id, sizeof n->id, "%s", s->cfg->node_id);
    snprintf(n->addr, sizeof n->addr, "%s", s->cfg->raft_adv_addr);
    snprintf(n->api_addr, sizeof n->api_addr, "http://%s", s->cfg->http_adv_addr);
    n->voter = true;
}

bool store_leader(store *s, store_node *leader)
{
    if (!s->leader_known)
        return false;
    self(s, leader);
    if (!s->leader) {
        snprintf(leader->id, sizeof leader->id, "other");
        snprintf(leader->addr, sizeof leader->addr, "127.0.0.1:1");
        snprintf(leader->api_addr, sizeof leader->api_addr, "%s", s->leader_api);
    }
    return true;
}

int store_check(store *s, const cmd_view *stmts, bool *readonly)
{
    return db_check(s->d, stmts, readonly) == DB_CHECK_DISALLOWED_PRAGMA ? STORE_DISALLOWED : STORE_OK;
}

int store_execute(store *s, const cmd_view *stmts, unsigned flags, uint64_t db_timeout_us, buf *out, uint64_t *idx,
                  char **err)
{
    if (!s->leader)
        return STORE_NOT_LEADER;
    bool ro;
    if (store_check(s, stmts, &ro) == STORE_DISALLOWED)
        return STORE_DISALLOWED;
    db_set_step_budget(s->d, s->cfg->db_max_write_steps);
    db_execute(s->d, stmts, flags, out);
    if (idx)
        *idx = 42;
    return STORE_OK;
}

int store_query(store *s, const cmd_view *stmts, unsigned flags, const store_read *r, buf *out, char **err)
{
    if (!s->leader && r->level != STORE_LEVEL_NONE)
        return STORE_NOT_LEADER;
    return db_query(s->d, stmts, flags, r->db_timeout_us, out) == DB_CHECK_OK ? STORE_OK : STORE_DISALLOWED;
}

int store_request(store *s, const cmd_view *stmts, unsigned flags, const store_read *r, buf *out, char **err)
{
    bool ro;
    if (store_check(s, stmts, &ro) == STORE_DISALLOWED)
        return STORE_DISALLOWED;
    if (ro)
        return store_query(s, stmts, flags, r, out, err);
    return store_execute(s, stmts, flags | DB_READ_ROWS, r->db_timeout_us, out, NULL, err);
}

int store_image_check(store *s, const void *image, size_t len, char **err)
{
    return db_image_check(s->d, image, len, err);
}

int store_load(store *s, const void *image, size_t len, bool boot, char **err)
{
    (void)boot;
    if (!s->leader)
        return STORE_NOT_LEADER;
    if (db_image_check(s->d, image, len, err) != 0)
        return STORE_INVALID;
    return db_restore(s->d, image, len, 0, err) == 0 ? STORE_OK : STORE_ERROR;
}

int store_join(store *s, const char *id, const char *addr, const char *api, bool voter, bool reset,
               char **err)
{
    s->joins++;
    return s->leader ? STORE_OK : STORE_NOT_LEADER;
}

int store_remove(store *s, const char *id, char **err)
{
    if (!s->leader)
        return STORE_NOT_LEADER;
    if (strcmp(id, s->cfg->node_id) != 0) {
        *err = strdup("node not found in cluster");
        return STORE_ERROR;
    }
    return STORE_OK;
}

int store_stepdown(store *s, const char *id, char **err)
{
    *err = strdup("cannot step down: single node");
    return STORE_ERROR;
}

int store_nodes(store *s, store_node **nodes)
{
    *nodes = calloc(1, sizeof **nodes);
    self(s, *nodes);
    return 1;
}

json_t *store_status(store *s)
{
    return json_pack("{s:s,s:{s:s}}", "node_id", s->cfg->node_id, "raft", "state",
                     s->leader ? "Leader" : "Follower");
}

void store_stage(store *s, int stage, double seconds)
{
    (void)s;
    (void)stage;
    (void)seconds;
}
json_t *store_vars(store *s) { return json_pack("{s:i}", "num_snapshots", 0); }
void store_vars_sections(store *s, json_t *doc) { json_object_set_new(doc, "store", store_vars(s)); }
void store_metrics(store *s, buf *b)
{
    (void)s;
    metrics_one(b, "rqlite_raft_term", "gauge", "Current Raft term.", 1);
}

bool store_wait_synced(store *s, uint64_t timeout_ms) { return s->leader_known; }

int store_snapshot(store *s, uint64_t trailing, bool *nothing_new, char **err)
{
    *err = strdup("not supported");
    return STORE_ERROR;
}

int store_copy(store *s, unsigned flags, db_progress_fn progress, void *arg, uint64_t *size, char **err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.copy-fake", db_path(s->d));
    if (db_backup_file(s->d, tmp, flags, progress, arg, NULL, err) != 0)
        return -1;
    int fd = open(tmp, O_RDWR | O_CLOEXEC);
    unlink(tmp);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        *err = strdup("cannot read the copy");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *size = (uint64_t)sb.st_size;
    return fd;
}
