/*
 * config.c: -cdc-config, as rqlite's cdc.NewConfig reads it (cdc/config.go),
 * but stricter where rqlite would fail later or not at all: the endpoint
 * must be stdout or an http(s) URL, the TLS files must be readable PEM,
 * durations may not be negative and the retry policy must be 0 or 1.
 *
 * QUIRK kept: durations in the file are JSON integers of nanoseconds (Go
 * unmarshals a time.Duration from a number), unlike the backup files'
 * duration strings; "1s" is refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cdc/cdc.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/os.h"

#define MS 1000000ULL

static void setDefaults(cdc_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_batch_size = 10;
    c->max_batch_delay_ns = 200 * MS;
    c->hwm_interval_ns = 1000 * MS;
    c->transmit_timeout_ns = 5000 * MS;
    c->transmit_max_retries = -1;
    c->transmit_retry_policy = CDC_RETRY_LINEAR;
    c->transmit_min_backoff_ns = 1000 * MS;
    c->transmit_max_backoff_ns = 30000 * MS;
}

static bool isUrl(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

/* RE2's most common forms POSIX ERE lacks: a leading (?i), and \d, \D. */
static int compileFilter(cdc_config *c, char **err)
{
    const char *p = c->table_filter;
    int flags = REG_EXTENDED | REG_NOSUB;
    if (strncmp(p, "(?i)", 4) == 0) {
        flags |= REG_ICASE;
        p += 4;
    }
    buf b = BUF_INIT;
    buf_puts(&b, ""); /* non-NULL data even for an empty pattern */
    for (; *p; p++) {
        if (p[0] == '\\' && (p[1] == 'd' || p[1] == 'D')) {
            buf_puts(&b, p[1] == 'd' ? "[0-9]" : "[^0-9]");
            p++;
        } else if (p[0] == '\\' && p[1]) {
            buf_append(&b, p, 2);
            p++;
        } else {
            buf_putc(&b, *p);
        }
    }
    int rc = regcomp(&c->filter, b.data ? b.data : "", flags);
    buf_free(&b);
    if (rc != 0) {
        char msg[256];
        regerror(rc, &c->filter, msg, sizeof msg);
        *err = rq_sprintf("invalid table_filter regular expression %s: %s", c->table_filter, msg);
        free(c->table_filter);
        c->table_filter = NULL;
        return -1;
    }
    return 0;
}

bool cdc_config_wants(const cdc_config *c, const char *table)
{
    return c->table_filter == NULL || regexec(&c->filter, table, 0, NULL, 0) == 0;
}

/* A readable PEM file (rqlite loads them when the service is created). */
static int checkPem(const char *field, const char *path, char **err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        *err = rq_sprintf("cannot read tls.%s %s: %s", field, path, strerror(errno));
        return -1;
    }
    char head[65536];
    size_t n = fread(head, 1, sizeof head - 1, f);
    int e = ferror(f) ? errno : 0;
    fclose(f);
    head[n] = '\0';
    if (e) {
        *err = rq_sprintf("cannot read tls.%s %s: %s", field, path, strerror(e));
        return -1;
    }
    if (strstr(head, "-----BEGIN ") == NULL) {
        *err = rq_sprintf("tls.%s %s holds no PEM data", field, path);
        return -1;
    }
    return 0;
}

/* Go's json.Unmarshal into the Config struct: a null leaves the default,
 * a value of another type is an error. */
static int getString(json_t *o, const char *k, char **out, char **err)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        *err = rq_sprintf("field %s must be a string", k);
        return -1;
    }
    free(*out);
    *out = strdup(json_string_value(v));
    return 0;
}

static int getBool(json_t *o, const char *k, bool *out, char **err)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        *err = rq_sprintf("field %s must be true or false", k);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* *set: present and not null. */
static int getInt(json_t *o, const char *k, int64_t *out, bool *set, char **err)
{
    json_t *v = json_object_get(o, k);
    *set = false;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v)) {
        *err = rq_sprintf("field %s must be an integer%s", k,
                          strstr(k, "delay") || strstr(k, "interval") || strstr(k, "timeout") ||
                                  strstr(k, "backoff")
                              ? " of nanoseconds (e.g. 1000000000 for one second)"
                              : "");
        return -1;
    }
    *out = json_integer_value(v);
    *set = true;
    return 0;
}

/* A duration field: 0 (or absent) keeps the default, as rqlite does. */
static int getDuration(json_t *o, const char *k, uint64_t *out, char **err)
{
    int64_t v;
    bool set;
    if (getInt(o, k, &v, &set, err) != 0)
        return -1;
    if (!set || v == 0)
        return 0;
    if (v < 0) {
        *err = rq_sprintf("field %s must not be negative", k);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static int parseFile(const char *path, cdc_config *c, char **err)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        FILE *f = fopen(path, "r");
        if (f == NULL)
            *err = rq_sprintf("cannot read %s: %s", path, strerror(errno));
        else
            *err = rq_sprintf("%s is not valid JSON: %s (line %d)", path, jerr.text, jerr.line);
        if (f)
            fclose(f);
        return -1;
    }
    int rc = -1;
    int64_t v;
    bool set;
    json_t *tls = json_object_get(root, "tls");
    if (!json_is_object(root)) {
        *err = rq_sprintf("%s must hold a JSON object", path);
        goto out;
    }
    if (getString(root, "endpoint", &c->endpoint, err) || getString(root, "service_id", &c->service_id, err) ||
        getBool(root, "row_ids_only", &c->row_ids_only, err) ||
        getString(root, "table_filter", &c->table_filter, err) ||
        getDuration(root, "max_batch_delay", &c->max_batch_delay_ns, err) ||
        getDuration(root, "high_watermark_interval", &c->hwm_interval_ns, err) ||
        getDuration(root, "transmit_timeout", &c->transmit_timeout_ns, err) ||
        getDuration(root, "transmit_min_backoff", &c->transmit_min_backoff_ns, err) ||
        getDuration(root, "transmit_max_backoff", &c->transmit_max_backoff_ns, err))
        goto out;
    if (getInt(root, "max_batch_size", &v, &set, err) != 0)
        goto out;
    if (set && v > 0)
        c->max_batch_size = v > 100000 ? 100000 : (int)v;
    if (getInt(root, "transmit_max_retries", &v, &set, err) != 0)
        goto out;
    if (set) /* rqlite counts attempts; 0 or less never equals their number: forever */
        c->transmit_max_retries = v > 0 ? v : -1;
    if (getInt(root, "transmit_retry_policy", &v, &set, err) != 0)
        goto out;
    if (set && v != CDC_RETRY_LINEAR && v != CDC_RETRY_EXPONENTIAL) {
        *err = rq_sprintf("field transmit_retry_policy must be 0 (linear) or 1 (exponential), not %lld", (long long)v);
        goto out;
    }
    if (set)
        c->transmit_retry_policy = (int)v;
    if (tls && !json_is_null(tls)) {
        if (!json_is_object(tls)) {
            *err = strdup("field tls must be an object");
            goto out;
        }
        if (getString(tls, "ca_cert_file", &c->ca_cert_file, err) ||
            getString(tls, "cert_file", &c->cert_file, err) || getString(tls, "key_file", &c->key_file, err) ||
            getString(tls, "server_name", &c->server_name, err) ||
            getBool(tls, "insecure_skip_verify", &c->insecure_skip_verify, err))
            goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* Empty strings mean unset, as in rqlite's omitempty fields. */
static void dropEmpty(char **s)
{
    if (*s && **s == '\0') {
        free(*s);
        *s = NULL;
    }
}

static int validate(cdc_config *c, char **err)
{
    if (c->endpoint == NULL || !(strcasecmp(c->endpoint, "stdout") == 0 || isUrl(c->endpoint))) {
        *err = rq_sprintf("endpoint must be \"stdout\" or an http:// or https:// URL, not %s%s%s",
                          c->endpoint ? "\"" : "", c->endpoint ? c->endpoint : "nothing", c->endpoint ? "\"" : "");
        return -1;
    }
    dropEmpty(&c->table_filter);
    dropEmpty(&c->ca_cert_file);
    dropEmpty(&c->cert_file);
    dropEmpty(&c->key_file);
    dropEmpty(&c->server_name);
    if (c->service_id == NULL)
        c->service_id = strdup("");
    if (c->table_filter && compileFilter(c, err) != 0)
        return -1;
    if ((c->cert_file == NULL) != (c->key_file == NULL)) {
        *err = strdup("tls.cert_file and tls.key_file go together: set both or neither");
        return -1;
    }
    if ((c->ca_cert_file && checkPem("ca_cert_file", c->ca_cert_file, err) != 0) ||
        (c->cert_file && checkPem("cert_file", c->cert_file, err) != 0) ||
        (c->key_file && checkPem("key_file", c->key_file, err) != 0))
        return -1;
    return 0;
}

int cdc_config_parse(const char *value, cdc_config *out, char **err)
{
    setDefaults(out);
    if (value == NULL || *value == '\0') {
        *err = strdup("no CDC configuration given");
        return -1;
    }
    if (strcmp(value, "stdout") == 0 || isUrl(value)) {
        out->endpoint = strdup(value);
    } else if (parseFile(value, out, err) != 0) {
        cdc_config_free(out);
        return -1;
    }
    if (validate(out, err) != 0) {
        cdc_config_free(out);
        return -1;
    }
    return 0;
}

void cdc_config_free(cdc_config *c)
{
    if (c->table_filter)
        regfree(&c->filter);
    free(c->endpoint);
    free(c->service_id);
    free(c->table_filter);
    free(c->ca_cert_file);
    free(c->cert_file);
    free(c->key_file);
    free(c->server_name);
    memset(c, 0, sizeof *c);
}
