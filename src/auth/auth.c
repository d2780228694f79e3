/*
 * auth.c: the credentials file, loaded into an immutable set that requests
 * share by reference count, so that a reload swaps in a new set while
 * checks already under way finish with the old one (see auth.h for the
 * contract).
 */
#include "auth/auth.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/os.h"

/* A credentials file is a few users; anything near this is a wrong path. */
#define MAX_FILE_SIZE (16 * 1024 * 1024)
/* Longest Authorization value read: Go has no such limit, but no honest
 * user name and password come near it, and decoding is bounded by it. */
#define MAX_HEADER 8192
#define CHECK_INTERVAL_MS 1000
#define ALL_PERMS ((1u << AUTH_PERM_COUNT) - 1)

/* Indexed by bit number: AUTH_PERM_ALL is bit 0. */
static const char *const perm_names[AUTH_PERM_COUNT] = {
    "all",  "execute",        "query",  "load",     "backup",     "status", "ready",
    "join", "join-read-only", "remove", "snapshot", "leader-ops", "ui",
};

const char *auth_perm_name(unsigned perm)
{
    for (int i = 0; i < AUTH_PERM_COUNT; i++)
        if (perm == 1u << i)
            return perm_names[i];
    return NULL;
}

unsigned auth_perm_bit(const char *name)
{
    if (strcmp(name, "join-read-replica") == 0)
        return AUTH_PERM_JOIN_READ_ONLY;
    for (int i = 0; i < AUTH_PERM_COUNT; i++)
        if (strcmp(name, perm_names[i]) == 0)
            return 1u << i;
    return 0;
}

void auth_free_secret(char *s)
{
    if (s == NULL)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* ---- the set of credentials ---------------------------------------------------- */

typedef struct cred {
    char *user;
    char *pass;     /* NULL for "*" without one */
    size_t pass_len;
    bool bcrypt;    /* pass is a bcrypt hash */
    unsigned perms;
    char *verified; /* bcrypt: the last password that matched (set->mu) */
} cred;

typedef struct credset {
    cred *v;
    int n;
    unsigned everyone;  /* the perms of "*" */
    int refs;           /* auth->mu */
    pthread_mutex_t mu; /* the verified fields */
} credset;

static void credsetFree(credset *cs)
{
    for (int i = 0; i < cs->n; i++) {
        free(cs->v[i].user);
        auth_free_secret(cs->v[i].pass);
        auth_free_secret(cs->v[i].verified);
    }
    free(cs->v);
    pthread_mutex_destroy(&cs->mu);
    free(cs);
}

/* A password starting like a bcrypt hash is one: never a plain password
 * (rqlite's rule before 8.12), and refused at load if it is not well formed,
 * rather than silently matching nothing. */
static bool looksBcrypt(const char *s)
{
    return strncmp(s, "$2a$", 4) == 0 || strncmp(s, "$2b$", 4) == 0 || strncmp(s, "$2y$", 4) == 0;
}

/* $2a$, $2b$ or $2y$, a two-digit cost, '$', then 53 characters of
 * bcrypt's base64: 60 in all. */
static bool wellFormedBcrypt(const char *s)
{
    if (strlen(s) != 60 || s[4] < '0' || s[4] > '3' || s[5] < '0' || s[5] > '9' || s[6] != '$')
        return false;
    int cost = (s[4] - '0') * 10 + (s[5] - '0');
    if (cost < 4 || cost > 31)
        return false;
    for (int i = 7; i < 60; i++)
        if (!strchr("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", s[i]))
            return false;
    return true;
}

static cred *findCred(credset *cs, const char *user)
{
    for (int i = 0; i < cs->n; i++)
        if (strcmp(cs->v[i].user, user) == 0)
            return &cs->v[i];
    return NULL;
}

/* One entry of the file into c, or the reason it is wrong (static text
 * completed into why). Unknown keys are ignored, as Go's decoder does;
 * unknown permissions are logged and ignored. */
static const char *parseEntry(json_t *e, cred *c, const char *path, size_t idx, char *why, size_t wn)
{
    if (!json_is_object(e))
        return "is not a JSON object";
    json_t *u = json_object_get(e, "username");
    if (!json_is_string(u) || json_string_length(u) == 0 || strlen(json_string_value(u)) != json_string_length(u))
        return "has no username (a non-empty string)";
    c->user = strdup(json_string_value(u));
    bool everyone = strcmp(c->user, "*") == 0;
    json_t *p = json_object_get(e, "password");
    if (p == NULL && !everyone) {
        snprintf(why, wn, "(user %s) has no password", c->user);
        return why;
    }
    if (p != NULL) {
        if (!json_is_string(p) || strlen(json_string_value(p)) != json_string_length(p)) {
            snprintf(why, wn, "(user %s): password must be a string without NUL bytes", c->user);
            return why;
        }
        c->pass = strdup(json_string_value(p));
        c->pass_len = strlen(c->pass);
        c->bcrypt = looksBcrypt(c->pass);
        if (c->bcrypt && !wellFormedBcrypt(c->pass)) {
            snprintf(why, wn, "(user %s): password starts like a bcrypt hash but is not a valid one", c->user);
            return why;
        }
    }
    json_t *perms = json_object_get(e, "perms");
    if (perms != NULL && !json_is_array(perms)) {
        snprintf(why, wn, "(user %s): perms must be an array of strings", c->user);
        return why;
    }
    size_t k;
    json_t *v;
    json_array_foreach(perms, k, v) {
        if (!json_is_string(v)) {
            snprintf(why, wn, "(user %s): perms must be an array of strings", c->user);
            return why;
        }
        unsigned bit = auth_perm_bit(json_string_value(v));
        if (bit == 0)
            rq_log("auth", "%s: entry %zu (user %s): unknown permission \"%s\" ignored", path, idx + 1, c->user,
                   json_string_value(v));
        c->perms |= bit;
    }
    return NULL;
}

/* Parse the file's text into a new set, or NULL with *err. */
static credset *parseCreds(const char *path, const char *text, size_t len, char **err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (doc == NULL) {
        *err = rq_sprintf("%s: invalid JSON at line %d, column %d: %s", path, jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_array(doc)) {
        json_decref(doc);
        *err = rq_sprintf("%s: not a JSON array of credentials", path);
        return NULL;
    }
    credset *cs = calloc(1, sizeof *cs);
    size_t n = json_array_size(doc);
    cs->v = calloc(n ? n : 1, sizeof *cs->v);
    pthread_mutex_init(&cs->mu, NULL);
    size_t i;
    json_t *e;
    json_array_foreach(doc, i, e) {
        cred c = {0};
        char why[400];
        const char *bad = parseEntry(e, &c, path, i, why, sizeof why);
        if (bad) {
            *err = rq_sprintf("%s: entry %zu %s", path, i + 1, bad);
            free(c.user);
            auth_free_secret(c.pass);
            credsetFree(cs);
            json_decref(doc);
            return NULL;
        }
        cred *old = findCred(cs, c.user);
        if (old) { /* a later entry wins */
            free(old->user);
            auth_free_secret(old->pass);
            *old = c;
        } else {
            cs->v[cs->n++] = c;
        }
    }
    json_decref(doc);
    cred *star = findCred(cs, "*");
    cs->everyone = star ? (star->perms & AUTH_PERM_ALL ? ALL_PERMS : star->perms) : 0;
    return cs;
}

/* ---- the file ------------------------------------------------------------------ */

/* What tells a changed file: a rewrite in place changes the mtime (and
 * usually the size), a rename over it the inode. */
typedef struct fileId {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} fileId;

static fileId idOf(const struct stat *sb)
{
    fileId id;
    memset(&id, 0, sizeof id);
    id.dev = sb->st_dev;
    id.ino = sb->st_ino;
    id.size = sb->st_size;
    id.mtime = sb->st_mtim;
    id.ctime = sb->st_ctim;
    return id;
}

static bool sameId(const fileId *a, const fileId *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Read and parse the file. *id is what the file was when opened (so that
 * a change made while it is read is seen again by the next look), and
 * *have_id says whether it got that far. */
static credset *loadFile(const char *path, fileId *id, bool *have_id, char **err)
{
    *have_id = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        *err = rq_sprintf("cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        *err = rq_sprintf("cannot read %s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    *id = idOf(&sb);
    *have_id = true;
    if (!S_ISREG(sb.st_mode)) {
        *err = rq_sprintf("cannot read %s: %s", path, S_ISDIR(sb.st_mode) ? strerror(EISDIR) : "not a regular file");
        close(fd);
        return NULL;
    }
    if (sb.st_size > MAX_FILE_SIZE) {
        *err = rq_sprintf("%s: too large for a credentials file (%lld bytes)", path, (long long)sb.st_size);
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)sb.st_size + 1, len = 0;
    char *text = malloc(cap);
    for (;;) {
        if (len == cap) { /* grew since fstat */
            if (cap > MAX_FILE_SIZE) {
                *err = rq_sprintf("%s: too large for a credentials file", path);
                close(fd);
                auth_free_secret(text);
                return NULL;
            }
            cap *= 2;
            text = realloc(text, cap);
        }
        ssize_t r = read(fd, text + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *err = rq_sprintf("cannot read %s: %s", path, strerror(errno));
            close(fd);
            free(text);
            return NULL;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    credset *cs = parseCreds(path, text, len, err);
    explicit_bzero(text, len);
    free(text);
    return cs;
}

struct auth {
    char *path;
    pthread_mutex_t mu;      /* cur, loaded, failed, have_failed */
    credset *cur;
    fileId loaded;           /* the file cur came from */
    fileId failed;           /* the file a reload last failed on */
    bool have_failed;
    pthread_mutex_t reload_mu; /* one reload at a time */
    int64_t checked_ms;      /* last look at the file (atomic) */
};

static credset *acquire(auth *a)
{
    pthread_mutex_lock(&a->mu);
    credset *cs = a->cur;
    cs->refs++;
    pthread_mutex_unlock(&a->mu);
    return cs;
}

static void release(auth *a, credset *cs)
{
    pthread_mutex_lock(&a->mu);
    bool last = --cs->refs == 0;
    pthread_mutex_unlock(&a->mu);
    if (last)
        credsetFree(cs);
}

int auth_open(const char *path, auth **out, char **err)
{
    fileId id = {0};
    bool have_id;
    credset *cs = loadFile(path, &id, &have_id, err);
    if (cs == NULL)
        return -1;
    auth *a = calloc(1, sizeof *a);
    a->path = strdup(path);
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->reload_mu, NULL);
    cs->refs = 1;
    a->cur = cs;
    a->loaded = id;
    a->checked_ms = rq_now_ms();
    rq_log("auth", "loaded credentials from %s (%d user%s)", path, cs->n, cs->n == 1 ? "" : "s");
    *out = a;
    return 0;
}

void auth_close(auth *a)
{
    if (a == NULL)
        return;
    release(a, a->cur);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->reload_mu);
    free(a->path);
    free(a);
}

/* Load the file and swap it in; the caller holds reload_mu. */
static int reloadLocked(auth *a, const char *why, char **err)
{
    fileId id = {0};
    bool have_id;
    char *e = NULL;
    credset *cs = loadFile(a->path, &id, &have_id, &e);
    pthread_mutex_lock(&a->mu);
    credset *old = NULL;
    int n_old = a->cur->n;
    if (cs) {
        cs->refs = 1;
        old = a->cur;
        a->cur = cs;
        a->loaded = id;
        a->have_failed = false;
    } else {
        /* Not tried again until the file changes again. */
        a->have_failed = have_id;
        a->failed = id;
    }
    pthread_mutex_unlock(&a->mu);
    if (cs == NULL) {
        rq_logl(RQ_LOG_WARN, "auth", "cannot reload credentials (%s): %s; keeping the %d user%s loaded before", why, e,
                n_old, n_old == 1 ? "" : "s");
        if (err)
            *err = e;
        else
            free(e);
        return -1;
    }
    release(a, old);
    rq_log("auth", "reloaded credentials from %s (%s): %d user%s", a->path, why, cs->n, cs->n == 1 ? "" : "s");
    return 0;
}

int auth_reload(auth *a, char **err)
{
    pthread_mutex_lock(&a->reload_mu);
    int rc = reloadLocked(a, "on request", err);
    pthread_mutex_unlock(&a->reload_mu);
    return rc;
}

/* At most once a second, one thread looks at the file and reloads it if it
 * changed since it was loaded (and since a reload last failed on it). */
static void maybeReload(auth *a)
{
    int64_t now = rq_now_ms();
    int64_t last = __atomic_load_n(&a->checked_ms, __ATOMIC_RELAXED);
    if (now - last < CHECK_INTERVAL_MS ||
        !__atomic_compare_exchange_n(&a->checked_ms, &last, now, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return;
    struct stat sb;
    if (stat(a->path, &sb) != 0)
        return; /* gone for now (an editor's rename): keep what is loaded */
    fileId id = idOf(&sb);
    pthread_mutex_lock(&a->mu);
    bool changed = !sameId(&id, &a->loaded) && !(a->have_failed && sameId(&id, &a->failed));
    pthread_mutex_unlock(&a->mu);
    if (changed && pthread_mutex_trylock(&a->reload_mu) == 0) {
        reloadLocked(a, "file changed", NULL);
        pthread_mutex_unlock(&a->reload_mu);
    }
}

/* ---- checking ------------------------------------------------------------------ */

/* Equal, in a time that depends on the length of given only. */
static bool sameSecret(const char *given, size_t given_len, const char *want, size_t want_len)
{
    volatile unsigned char d = given_len != want_len;
    for (size_t i = 0; i < given_len; i++)
        d |= (unsigned char)given[i] ^ (unsigned char)(i < want_len ? want[i] : 0);
    return d == 0;
}

/* pass against a bcrypt hash: the last password that matched is kept, so
 * that a client's every request does not pay bcrypt's cost again. */
static bool bcryptMatches(credset *cs, cred *c, const char *pass, size_t len)
{
    pthread_mutex_lock(&cs->mu);
    bool hit = c->verified && sameSecret(pass, len, c->verified, strlen(c->verified));
    pthread_mutex_unlock(&cs->mu);
    if (hit)
        return true;
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (cd == NULL)
        return false;
    const char *out = crypt_r(pass, c->pass, cd);
    bool ok = out && out[0] != '*' && sameSecret(out, strlen(out), c->pass, c->pass_len);
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    if (ok) {
        pthread_mutex_lock(&cs->mu);
        auth_free_secret(c->verified);
        c->verified = strdup(pass);
        pthread_mutex_unlock(&cs->mu);
    }
    return ok;
}

/* The password check: constant time against a plain password; a bcrypt
 * hash is only ever an input to bcrypt, never compared to the password. */
static bool passwordMatches(credset *cs, cred *c, const char *pass)
{
    if (c->pass == NULL || pass == NULL)
        return false;
    size_t len = strlen(pass);
    if (c->bcrypt)
        return bcryptMatches(cs, c, pass, len);
    return sameSecret(pass, len, c->pass, c->pass_len);
}

bool auth_allowed(auth *a, const char *user, const char *pass, unsigned perms)
{
    maybeReload(a);
    credset *cs = acquire(a);
    unsigned need = perms & ~cs->everyone;
    bool ok = need == 0;
    if (!ok && user != NULL) {
        cred *c = findCred(cs, user);
        if (c && strcmp(c->user, "*") != 0 && passwordMatches(cs, c, pass)) {
            unsigned has = c->perms & AUTH_PERM_ALL ? ALL_PERMS : c->perms;
            ok = (need & ~has) == 0;
        }
    }
    release(a, cs);
    return ok;
}

char *auth_basic_header(auth *a, const char *user, char **why)
{
    credset *cs = acquire(a);
    cred *c = findCred(cs, user);
    char *out = NULL;
    const char *bad = NULL;
    if (c == NULL || strcmp(user, "*") == 0)
        bad = "is not a user in the credentials file";
    else if (c->bcrypt)
        bad = "has a bcrypt hash for a password in the credentials file, which cannot be sent to other nodes";
    if (bad == NULL) {
        static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t ul = strlen(user), n = ul + 1 + c->pass_len;
        unsigned char *raw = malloc(n + 1);
        memcpy(raw, user, ul);
        raw[ul] = ':';
        memcpy(raw + ul + 1, c->pass, c->pass_len);
        out = malloc(6 + (n + 2) / 3 * 4 + 1);
        char *o = out + 6;
        memcpy(out, "Basic ", 6);
        for (size_t i = 0; i < n; i += 3) {
            unsigned v = (unsigned)raw[i] << 16 | (i + 1 < n ? (unsigned)raw[i + 1] << 8 : 0) |
                         (i + 2 < n ? raw[i + 2] : 0);
            *o++ = tbl[v >> 18 & 63];
            *o++ = tbl[v >> 12 & 63];
            *o++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
            *o++ = i + 2 < n ? tbl[v & 63] : '=';
        }
        *o = '\0';
        explicit_bzero(raw, n);
        free(raw);
    } else if (why) {
        *why = rq_sprintf("user %s %s", user, bad);
    }
    release(a, cs);
    return out;
}

/* ---- Basic credentials --------------------------------------------------------- */

static int b64val(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* Standard padded base64 (Go's StdEncoding) into out, which has room for
 * n / 4 * 3 bytes; returns the decoded length or -1. */
static long b64decode(const char *in, size_t n, unsigned char *out)
{
    if (n % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char ch = (unsigned char)in[i + k];
            if (ch == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad || (v[k] = b64val(ch)) < 0)
                return -1; /* a character after '=', or not base64 */
        }
        unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        out[o++] = (unsigned char)(w >> 16);
        if (pad < 2)
            out[o++] = (unsigned char)(w >> 8);
        if (pad < 1)
            out[o++] = (unsigned char)w;
    }
    return (long)o;
}

int auth_parse_basic(const char *value, size_t len, char **user, char **pass)
{
    *user = *pass = NULL;
    if (value == NULL || len < 6 || len > MAX_HEADER || strncasecmp(value, "Basic ", 6) != 0)
        return -1;
    unsigned char *raw = malloc((len - 6) / 4 * 3 + 1);
    long n = b64decode(value + 6, len - 6, raw);
    unsigned char *colon = n > 0 ? memchr(raw, ':', (size_t)n) : NULL;
    if (colon == NULL || memchr(raw, '\0', (size_t)n) != NULL) {
        if (n > 0)
            explicit_bzero(raw, (size_t)n);
        free(raw);
        return -1;
    }
    size_t ul = (size_t)(colon - raw);
    *user = strndup((char *)raw, ul);
    *pass = strndup((char *)colon + 1, (size_t)n - ul - 1);
    explicit_bzero(raw, (size_t)n);
    free(raw);
    return 0;
}
