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
#include <string.h>
#include <unistd.h>

#include "store/codec.h"
#include "store/internal.h"
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
