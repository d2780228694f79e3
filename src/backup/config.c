/*
 * config.c: rqlite's auto-backup and auto-restore files.
 *
 * They are read as Go's encoding/json reads them into rqlite's structs:
 * field names match case-insensitively (the last match wins), unknown
 * fields are ignored, null leaves a field unset, and a value of the wrong
 * JSON kind is an error naming the field. Durations are a Go duration
 * string or a number of nanoseconds, and must be positive.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backup/internal.h"
#include "util/buf.h"
#include "util/duration.h"
#include "util/os.h"

/* ---- $VAR expansion (Go's os.Expand) ----------------------------------- */

static bool shellSpecial(char c)
{
    return c && strchr("*#$@!?-0123456789", c) != NULL;
}

static bool alnum_(char c)
{
    return c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* What follows a '$': the variable's name (start, length) and how many
 * bytes it takes; a name of length 0 with width > 0 is bad syntax, eaten. */
static size_t shellName(const char *s, const char **name, size_t *len)
{
    *name = s;
    *len = 0;
    if (s[0] == '{') {
        if (s[1] && shellSpecial(s[1]) && s[2] == '}') {
            *name = s + 1;
            *len = 1;
            return 3;
        }
        for (size_t i = 1; s[i]; i++) {
            if (s[i] == '}') {
                if (i == 1)
                    return 2; /* "${}" */
                *name = s + 1;
                *len = i - 1;
                return i + 1;
            }
        }
        return 1; /* "${" without its brace */
    }
    if (shellSpecial(s[0])) {
        *len = 1;
        return 1;
    }
    size_t i = 0;
    while (alnum_(s[i]))
        i++;
    *len = i;
    return i;
}

char *backup_expand_env(const char *s)
{
    buf out = BUF_INIT;
    for (size_t j = 0; s[j]; j++) {
        if (s[j] != '$' || s[j + 1] == '\0') {
            buf_putc(&out, s[j]);
            continue;
        }
        const char *name;
        size_t len, w = shellName(s + j + 1, &name, &len);
        if (len == 0 && w == 0) {
            buf_putc(&out, '$'); /* "$" not followed by a name stays */
        } else if (len > 0) {
            char *n = strndup(name, len);
            const char *v = n ? getenv(n) : NULL;
            if (v)
                buf_puts(&out, v);
            free(n);
        }
        j += w;
    }
    return out.data ? out.data : strdup("");
}

/* ---- fields, the Go way -------------------------------------------------- */

/* The value of the last key of obj equal to name ignoring case. */
static json_t *field(json_t *obj, const char *name)
{
    json_t *found = NULL, *v;
    const char *k;
    json_object_foreach(obj, k, v)
    {
        if (strcasecmp(k, name) == 0)
            found = v;
    }
    return found && !json_is_null(found) ? found : NULL;
}

static const char *kindName(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    default: return "null";
    }
}

static int wrongKind(json_t *v, const char *st, const char *name, const char *type, char **err)
{
    *err = rq_sprintf("json: cannot unmarshal %s into Go struct field %s.%s of type %s", kindName(v), st, name, type);
    return -1;
}

static int getString(json_t *obj, const char *st, const char *name, char **out, char **err)
{
    json_t *v = field(obj, name);
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return wrongKind(v, st, name, "string", err);
    free(*out);
    *out = strdup(json_string_value(v));
    return 0;
}

static int getBool(json_t *obj, const char *st, const char *name, bool *out, char **err)
{
    json_t *v = field(obj, name);
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return wrongKind(v, st, name, "bool", err);
    *out = json_is_true(v);
    return 0;
}

/* rqlite's auto.Duration: a string in Go's syntax or a number of
 * nanoseconds; not positive is "invalid interval" (its one error for
 * both files). present: whether the field was there. */
static int getDuration(json_t *obj, const char *name, int64_t *ns, bool *present, char **err)
{
    json_t *f = NULL, *v;
    const char *k;
    json_object_foreach(obj, k, v)
    {
        if (strcasecmp(k, name) == 0)
            f = v;
    }
    *present = f != NULL;
    if (f == NULL)
        return 0;
    if (json_is_number(f)) {
        double d = json_number_value(f);
        if (d >= 9.2e18 || d <= -9.2e18) {
            *err = rq_sprintf("invalid %s: %g ns is out of range", name, d);
            return -1;
        }
        *ns = (int64_t)d;
    } else if (json_is_string(f)) {
        char msg[256];
        if (rq_duration_parse(json_string_value(f), ns, msg, sizeof msg) != 0) {
            *err = strdup(msg);
            return -1;
        }
    } else {
        *err = strdup("invalid duration");
        return -1;
    }
    if (*ns <= 0) {
        *err = rq_sprintf("invalid interval (%s must be greater than zero)", name);
        return -1;
    }
    return 0;
}

/* ---- the sub-configurations ------------------------------------------------ */

static int parseS3(json_t *sub, backup_config *c, char **err)
{
    static const char st[] = "S3Config";
    if (getString(sub, st, "endpoint", &c->endpoint, err) || getString(sub, st, "region", &c->region, err) ||
        getString(sub, st, "access_key_id", &c->access_key_id, err) ||
        getString(sub, st, "secret_access_key", &c->secret_access_key, err) ||
        getString(sub, st, "bucket", &c->bucket, err) || getString(sub, st, "path", &c->path, err) ||
        getBool(sub, st, "force_path_style", &c->force_path_style, err))
        return -1;
    /* rqlite would fail at the first upload or download: say so now. */
    if (c->bucket == NULL || !*c->bucket) {
        *err = strdup("s3: \"bucket\" is required");
        return -1;
    }
    if (c->path == NULL || !*c->path) {
        *err = strdup("s3: \"path\" (the object's key) is required");
        return -1;
    }
    return 0;
}

/* rqlite's checks of the file type's dir and name (path traversal). */
static int parseFile(json_t *sub, backup_config *c, char **err)
{
    static const char st[] = "Config";
    if (getString(sub, st, "dir", &c->dir, err) || getString(sub, st, "name", &c->name, err))
        return -1;
    const char *d = c->dir ? c->dir : "";
    if (d[0] != '/') {
        *err = rq_sprintf("directory path must be absolute: %s", *d ? d : ".");
        return -1;
    }
    const char *n = c->name ? c->name : "";
    if (!*n || strchr(n, '/') || strstr(n, "..") || strcmp(n, ".") == 0) {
        *err = rq_sprintf("invalid file parameter: %s (must be a simple filename without path separators)", n);
        return -1;
    }
    /* Go cleans the dir ("/a//b/" is "/a/b"): trailing slashes at least. */
    size_t l = strlen(c->dir);
    while (l > 1 && c->dir[l - 1] == '/')
        c->dir[--l] = '\0';
    return 0;
}

int backup_config_parse(const char *text, backup_use use, backup_config *out, char **err)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        *err = rq_sprintf("invalid JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        return -1;
    }
    int rc = -1;
    const char *st = use == BACKUP_FOR_UPLOAD ? "backup.Config" : "restore.Config";
    if (!json_is_object(root)) {
        *err = rq_sprintf("json: cannot unmarshal %s into Go value of type %s", kindName(root), st);
        goto done;
    }
    json_t *v = field(root, "version");
    if (v && !json_is_integer(v)) {
        wrongKind(v, "Config", "version", "int", err);
        goto done;
    }
    if (v && (json_integer_value(v) > 1 || json_integer_value(v) < -2147483647)) {
        *err = strdup("invalid version");
        goto done;
    }
    out->version = v ? (int)json_integer_value(v) : 0;
    /* A missing, null or unknown type is "unsupported storage type". */
    json_t *t = NULL, *tv;
    const char *k;
    json_object_foreach(root, k, tv)
    {
        if (strcasecmp(k, "type") == 0)
            t = tv;
    }
    const char *type = t && json_is_string(t) ? json_string_value(t) : "";
    if (strcmp(type, "s3") == 0)
        out->type = BACKUP_TYPE_S3;
    else if (strcmp(type, "gcs") == 0)
        out->type = BACKUP_TYPE_GCS;
    else if (strcmp(type, "file") == 0 && use == BACKUP_FOR_UPLOAD)
        out->type = BACKUP_TYPE_FILE;
    if (out->type == 0) {
        *err = *type ? rq_sprintf("unsupported storage type \"%s\"", type) : strdup("unsupported storage type");
        goto done;
    }
    bool present;
    if (use == BACKUP_FOR_UPLOAD) {
        if (getBool(root, "Config", "no_compress", &out->no_compress, err) ||
            getBool(root, "Config", "timestamp", &out->timestamp, err) ||
            getBool(root, "Config", "vacuum", &out->vacuum, err) ||
            getDuration(root, "interval", &out->interval_ns, &present, err))
            goto done;
        if (!present) { /* rqlite would panic on a zero ticker */
            *err = strdup("invalid interval (interval is required)");
            goto done;
        }
    } else {
        if (getBool(root, "Config", "continue_on_failure", &out->continue_on_failure, err) ||
            getDuration(root, "timeout", &out->timeout_ns, &present, err))
            goto done;
        if (!present)
            out->timeout_ns = 30 * 1000000000LL;
    }
    if (out->type == BACKUP_TYPE_GCS) {
        *err = strdup("unsupported storage type \"gcs\": Google Cloud Storage is not supported by this build "
                      "(GCS's S3-compatible XML API with HMAC keys may serve as type \"s3\")");
        goto done;
    }
    json_t *sub = field(root, "sub");
    if (sub == NULL) {
        *err = strdup("\"sub\" is required (unexpected end of JSON input)");
        goto done;
    }
    if (!json_is_object(sub)) {
        *err = rq_sprintf("json: cannot unmarshal %s into Go value of type %s", kindName(sub),
                          out->type == BACKUP_TYPE_S3 ? "aws.S3Config" : "file.Config");
        goto done;
    }
    rc = out->type == BACKUP_TYPE_S3 ? parseS3(sub, out, err) : parseFile(sub, out, err);
done:
    json_decref(root);
    if (rc != 0)
        backup_config_free(out);
    return rc;
}

int backup_config_load(const char *path, backup_use use, backup_config *out, char **err)
{
    const char *what = use == BACKUP_FOR_UPLOAD ? "auto-backup" : "auto-restore";
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    buf text = BUF_INIT;
    char chunk[4096];
    size_t n;
    while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0 && text.len < (1u << 20))
        buf_append(&text, chunk, n);
    if (f == NULL || ferror(f)) {
        *err = rq_sprintf("failed to read %s file: open %s: %s", what, path, strerror(errno));
        if (f)
            fclose(f);
        buf_free(&text);
        return -1;
    }
    fclose(f);
    if (text.len >= (1u << 20)) {
        *err = rq_sprintf("failed to read %s file: %s is larger than 1 MiB", what, path);
        buf_free(&text);
        return -1;
    }
    if (text.data == NULL) { /* an empty file: "" to parse */
        buf_append(&text, "", 1);
        text.len = 0;
    }
    if (strlen(text.data) != text.len) {
        *err = rq_sprintf("failed to parse %s file: %s holds a NUL byte", what, path);
        buf_free(&text);
        return -1;
    }
    char *expanded = backup_expand_env(text.data);
    buf_free(&text);
    char *perr = NULL;
    int rc = backup_config_parse(expanded ? expanded : "", use, out, &perr);
    free(expanded);
    if (rc != 0) {
        *err = rq_sprintf("failed to parse %s file %s: %s", what, path, perr ? perr : "?");
        free(perr);
    }
    return rc;
}

void backup_config_free(backup_config *c)
{
    char **s[] = {&c->endpoint, &c->region, &c->access_key_id, &c->secret_access_key,
                  &c->bucket,   &c->path,   &c->dir,           &c->name};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        free(*s[i]);
        *s[i] = NULL;
    }
}

char *backup_timestamped(const char *path, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
    const char *slash = strrchr(path, '/');
    size_t head = slash ? (size_t)(slash - path + 1) : 0;
    return rq_sprintf("%.*s%s_%s", (int)head, path, stamp, path + head);
}
