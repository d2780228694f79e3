/*
 * recover.c: what store_open checks and repairs in a data directory before
 * libraft starts on it.
 *
 * - The snapshot libraft will restore: which database index it stands for,
 *   so that store_open can refuse a database file older than the snapshot
 *   (the log before it is gone: such a file can never catch up).
 * - The node's identity: a data directory belongs to one node ID, recorded
 *   with its latest Raft address in raft/rqnode.json.
 * - rqlite's peers.json recovery of a cluster that lost its quorum.
 *
 * All of it runs on the thread calling store_open, before the Raft thread
 * exists.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/codec.h"
#include "store/internal.h"
#include "util/le.h"
#include "util/log.h"
#include "util/os.h"

/* The newest snapshot libraft keeps in dir (files snapshot-TERM-INDEX-TS
 * and .meta): its Raft index, the database index it stands for (*need),
 * and whether it has the old inline format (*v1). */
raft_index storeLatestSnapshot(const char *dir, raft_index *need, bool *v1)
{
    raft_index best = 0;
    char name[512] = "";
    *v1 = false;
    *need = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long term, index, ts;
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".meta") == 0 &&
            sscanf(e->d_name, "snapshot-%llu-%llu-%llu", &term, &index, &ts) == 3 && index >= best) {
            best = index;
            snprintf(name, sizeof name, "%.*s", (int)(n - 5), e->d_name);
        }
    }
    closedir(d);
    if (best == 0)
        return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    unsigned char head[4096];
    size_t n = f ? fread(head, 1, sizeof head, f) : 0;
    if (f)
        fclose(f);
    /* Snapshots were LZ4-compressed (libraft's default) only by versions
     * that wrote the old inline format. */
    static const unsigned char lz4[4] = {0x04, 0x22, 0x4d, 0x18};
    codec_snapshot snap;
    if (n >= 8 && (memcmp(head, CODEC_SNAP_MAGIC_V1, 8) == 0 || memcmp(head, lz4, 4) == 0)) {
        *v1 = true;
    } else if (codec_snap_decode(head, n, &snap) == 0) {
        *need = snap.db_index;
        json_decref(snap.metas);
    } else {
        *need = best; /* unreadable: assume the worst */
    }
    return best;
}

/* A data directory belongs to one node ID, recorded at first start: another
 * ID would corrupt the cluster's configuration silently. The Raft address
 * may change between starts (new ports, a rescheduled pod): the new one is
 * recorded, and main has the configuration updated through the leader. */
int storeCheckIdentity(store *s, bool is_new, char **err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/rqnode.json", s->raft_dir);
    json_t *j = is_new ? NULL : json_load_file(path, 0, NULL);
    if (j) {
        const char *id = json_string_value(json_object_get(j, "id"));
        const char *addr = json_string_value(json_object_get(j, "addr"));
        if (id && strcmp(id, s->cfg->node_id) != 0) {
            *err = rq_sprintf("data directory %s belongs to node ID %s, not %s: start it with "
                              "-node-id %s, or use another directory",
                              s->cfg->data_dir, id, s->cfg->node_id, id);
            json_decref(j);
            return -1;
        }
        bool same = addr == NULL || strcmp(addr, s->cfg->raft_adv_addr) == 0;
        if (!same)
            rq_log("store", "Raft address changed from %s to %s since the last start", addr,
                   s->cfg->raft_adv_addr);
        s->raft_addr_changed = !same;
        json_decref(j);
        if (same)
            return 0;
    }
    j = json_pack("{s:s,s:s}", "id", s->cfg->node_id, "addr", s->cfg->raft_adv_addr);
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = json_dump_file(j, tmp, JSON_COMPACT);
    json_decref(j);
    if (rc != 0 || rename(tmp, path) != 0) {
        *err = rq_sprintf("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* rqlite's recovery of a cluster that lost quorum: the operator writes
 * <data>/raft/peers.json, [{"id":..,"address":..,"non_voter":false},...],
 * on each surviving node and restarts it; the listed nodes become the
 * configuration (a new configuration entry at the end of the log) and the
 * file is renamed peers.info. */
int storeRecoverFromPeers(store *s, char **err)
{
    char path[4200], info[4200];
    snprintf(path, sizeof path, "%s/peers.json", s->raft_dir);
    snprintf(info, sizeof info, "%s/peers.info", s->raft_dir);
    if (access(path, F_OK) != 0)
        return 0;
    rq_log("store", "attempting node recovery using %s", path);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!json_is_array(j) || json_array_size(j) == 0) {
        *err = rq_sprintf("failed to read peers file %s: %s", path,
                          j ? "expected a non-empty JSON array" : jerr.text);
        json_decref(j);
        return -1;
    }
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    size_t i;
    json_t *p;
    bool self = false;
    json_array_foreach(j, i, p) {
        const char *id = json_string_value(json_object_get(p, "id"));
        const char *addr = json_string_value(json_object_get(p, "address"));
        bool non_voter = json_is_true(json_object_get(p, "non_voter"));
        if (id == NULL || addr == NULL || !*id || !*addr) {
            *err = rq_sprintf("failed to read peers file %s: entry %zu needs \"id\" and \"address\"",
                              path, i);
            raft_configuration_close(&conf);
            json_decref(j);
            return -1;
        }
        raft_id rid = storeRaftId(id);
        self = self || rid == s->id;
        if (raft_configuration_add(&conf, rid, addr, non_voter ? RAFT_STANDBY : RAFT_VOTER) != 0) {
            *err = rq_sprintf("failed to read peers file %s: duplicate or invalid node %s", path, id);
            raft_configuration_close(&conf);
            json_decref(j);
            return -1;
        }
        meta *m = storeMetaFind(s, rid);
        storeMetaUpsert(s, id, rid, addr, m ? m->api : "");
    }
    json_decref(j);
    if (!self) {
        raft_configuration_close(&conf);
        *err = rq_sprintf("peers file %s does not list this node (%s)", path, s->cfg->node_id);
        return -1;
    }
    int rv = raft_recover(&s->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0) {
        *err = rq_sprintf("failed to recover node: %s", raft_strerror(rv));
        return -1;
    }
    if (rename(path, info) != 0) {
        *err = rq_sprintf("failed to move %s after recovery: %s", path, strerror(errno));
        return -1;
    }
    storeStat(s, SSTAT_RECOVERIES);
    rq_log("store", "node recovered successfully using %s", path);
    return 0;
}

/* libraft's encoding of a configuration, which its API can encode but not
 * decode: u8 version 1, u64 count, then per server u64 id, the address
 * NUL-terminated, u8 role (integers little-endian). 0, or -1 if malformed. */
static int decodeConfiguration(const struct raft_buffer *b, struct raft_configuration *c)
{
    const unsigned char *p = b->base, *end = p + b->len;
    if (b->len < 9 || p[0] != 1)
        return -1;
    uint64_t n = le64_get(p + 1);
    p += 9;
    for (uint64_t i = 0; i < n; i++) {
        if (end - p < 8)
            return -1;
        raft_id id = le64_get(p);
        p += 8;
        const unsigned char *nul = memchr(p, 0, (size_t)(end - p));
        if (nul == NULL || nul + 1 >= end)
            return -1;
        const char *address = (const char *)p;
        int role = nul[1];
        p = nul + 2;
        if (raft_configuration_add(c, id, address, role) != 0)
            return -1;
    }
    return 0;
}

/* What raft_io->load handed out, freed as libraft frees it. */
static void freeLoaded(struct raft_snapshot *snap, struct raft_entry *entries, size_t n)
{
    if (snap) {
        raft_configuration_close(&snap->configuration);
        for (unsigned i = 0; i < snap->n_bufs; i++)
            raft_free(snap->bufs[i].base);
        raft_free(snap->bufs);
        raft_free(snap);
    }
    void *last = NULL;
    for (size_t i = 0; i < n; i++) {
        if (entries[i].batch != last && entries[i].batch != NULL)
            raft_free(entries[i].batch);
        last = entries[i].batch;
    }
    raft_free(entries);
}

/* The newest configuration on disk (the last change entry, else the
 * snapshot's) into c. 0, or -1 when there is none or it cannot be read. */
static int loadConfiguration(store *s, struct raft_configuration *c)
{
    raft_term term;
    raft_id vote;
    struct raft_snapshot *snap = NULL;
    raft_index start;
    struct raft_entry *entries = NULL;
    size_t n = 0;
    if (s->io.load(&s->io, &term, &vote, &snap, &start, &entries, &n) != 0)
        return -1;
    int rc = -1;
    for (size_t i = n; i > 0 && rc != 0; i--) {
        if (entries[i - 1].type == RAFT_CHANGE) {
            raft_configuration_close(c);
            raft_configuration_init(c);
            rc = decodeConfiguration(&entries[i - 1].buf, c);
        }
    }
    if (rc != 0) {
        raft_configuration_close(c);
        raft_configuration_init(c);
    }
    if (rc != 0 && snap && snap->configuration.n > 0) {
        rc = 0;
        for (unsigned i = 0; rc == 0 && i < snap->configuration.n; i++) {
            const struct raft_server *srv = &snap->configuration.servers[i];
            rc = raft_configuration_add(c, srv->id, srv->address, srv->role);
        }
    }
    freeLoaded(snap, entries, n);
    return rc;
}

int storeFollowOwnAddress(store *s, char **err)
{
    if (!s->raft_addr_changed)
        return 0;
    struct raft_configuration c, next;
    raft_configuration_init(&c);
    raft_configuration_init(&next);
    int voters = 0, rc = 0;
    bool self_voter = false;
    if (loadConfiguration(s, &c) == 0) {
        for (unsigned i = 0; i < c.n; i++) {
            voters += c.servers[i].role == RAFT_VOTER;
            self_voter |= c.servers[i].id == s->id && c.servers[i].role == RAFT_VOTER &&
                          strcmp(c.servers[i].address, s->cfg->raft_adv_addr) != 0;
        }
    }
    if (voters == 1 && self_voter) {
        for (unsigned i = 0; i < c.n && rc == 0; i++) {
            const struct raft_server *srv = &c.servers[i];
            rc = raft_configuration_add(&next, srv->id, srv->id == s->id ? s->cfg->raft_adv_addr : srv->address,
                                        srv->role);
        }
        if (rc == 0 && (rc = raft_recover(&s->raft, &next)) == 0)
            rq_log("store", "the only voter of its cluster: recorded its new Raft address %s", s->cfg->raft_adv_addr);
        else
            *err = rq_sprintf("cannot record the new Raft address: %s", raft_strerror(rc));
    }
    raft_configuration_close(&c);
    raft_configuration_close(&next);
    return rc == 0 ? 0 : -1;
}
