/*
 * params.c: what a request's query string says (see internal.h).
 *
 * libmicrohttpd has already split and decoded the query string; these read
 * it the way rqlite does: the first value of a key wins, a key counts as
 * set whatever its value, durations are Go's ("1.5s", "200ms"). Nothing
 * here answers the client: a bad value comes back as the message of a 400
 * for the handler to send.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "http/internal.h"
#include "util/duration.h"

typedef struct param_find {
    const char *key;
    bool found;
    const char *value;
} param_find;

/* Stops at the first match: a repeated key's first value is the one rqlite reads. */
static enum MHD_Result findParam(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    param_find *f = cls;
    (void)kind;
    if (strcmp(key, f->key) == 0) {
        f->found = true;
        f->value = value;
        return MHD_NO; /* first value wins */
    }
    return MHD_YES;
}

bool params_has(struct MHD_Connection *c, const char *key)
{
    param_find f = {key, false, NULL};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, findParam, &f);
    return f.found;
}

const char *params_value(struct MHD_Connection *c, const char *key)
{
    param_find f = {key, false, NULL};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, findParam, &f);
    return f.found ? (f.value ? f.value : "") : NULL;
}

/* RFC 3986's unreserved characters kept, everything else %XX: the
 * forwarded query string must parse back to the same values. */
static void urlEncode(buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            buf_putc(b, (char)*p);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[*p >> 4]);
            buf_putc(b, hex[*p & 15]);
        }
    }
}

/* One key=value of params_raw_query(); a bare key stays bare, so ?pretty
 * is not turned into ?pretty= on the leader. */
static enum MHD_Result rebuildQuery(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    buf *b = cls;
    (void)kind;
    if (b->len)
        buf_putc(b, '&');
    urlEncode(b, key);
    if (value) {
        buf_putc(b, '=');
        urlEncode(b, value);
    }
    return MHD_YES;
}

void params_raw_query(struct MHD_Connection *c, buf *out)
{
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, rebuildQuery, out);
}

unsigned params_db_flags(struct MHD_Connection *c)
{
    unsigned f = 0;
    if (params_has(c, "transaction")) f |= DB_TX;
    if (params_has(c, "timings")) f |= DB_TIMINGS;
    if (params_has(c, "associative")) f |= DB_ASSOC;
    if (params_has(c, "blob_array")) f |= DB_BLOB_ARRAY;
    if (params_has(c, "qualify_columns")) f |= DB_QUALIFY;
    return f;
}

/* Unknown levels are weak, as rqlite reads them. */
static store_level levelParam(struct MHD_Connection *c)
{
    const char *l = params_value(c, "level");
    if (l == NULL) return STORE_LEVEL_WEAK;
    if (strcasecmp(l, "none") == 0) return STORE_LEVEL_NONE;
    if (strcasecmp(l, "strong") == 0) return STORE_LEVEL_STRONG;
    if (strcasecmp(l, "linearizable") == 0) return STORE_LEVEL_LINEARIZABLE;
    if (strcasecmp(l, "auto") == 0) return STORE_LEVEL_AUTO;
    return STORE_LEVEL_WEAK;
}

/* Microseconds, rounded up (1ns asks for a fresh read, not for none); a
 * negative duration is valid, as for Go, and means none. */
static bool durationUs(const char *v, uint64_t *us)
{
    int64_t ns = 0;
    if (v && rq_duration_parse(v, &ns, NULL, 0) != 0)
        return false;
    *us = ns > 0 ? ((uint64_t)ns + 999) / 1000 : 0;
    return true;
}

const char *params_read(struct MHD_Connection *c, store_read *rd)
{
    const char *f = params_value(c, "freshness");
    rd->level = levelParam(c);
    rd->freshness_strict = params_has(c, "freshness_strict");
    if (!durationUs(f, &rd->freshness_us))
        return "freshness is not a valid duration";
    if (rd->freshness_strict && f == NULL)
        return "freshness_strict requires freshness";
    if (!durationUs(params_value(c, "db_timeout"), &rd->db_timeout_us))
        return "db_timeout is not a valid duration";
    /* rqlite's HTTP default is 10 s (a zero value is the store's 1 s). */
    if (!params_duration_ms(c, "linearizable_timeout", 10000, &rd->linearizable_timeout_ms))
        return "linearizable_timeout is not a valid duration";
    return NULL;
}

bool params_timeout(struct MHD_Connection *c, uint64_t def, uint64_t *ms)
{
    return params_duration_ms(c, "timeout", def, ms);
}

bool params_duration_ms(struct MHD_Connection *c, const char *key, uint64_t def, uint64_t *ms)
{
    const char *t = params_value(c, key);
    int64_t ns = 0;
    *ms = def;
    if (t == NULL)
        return true;
    if (rq_duration_parse(t, &ns, NULL, 0) != 0)
        return false;
    *ms = ns > 0 ? ((uint64_t)ns + 999999) / 1000000 : 0;
    return true;
}
