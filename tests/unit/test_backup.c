/* Unit tests for backup/: rqlite's auto-backup and auto-restore files
 * ($VAR expansion, Go's JSON rules, durations, versions, types) and the
 * timestamped names. Transfers are tested by tests/system/test_autobackup.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/backup.h"

static void expands(const char *in, const char *want)
{
    char *got = backup_expand_env(in);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_expand_env(void **st)
{
    setenv("RQ_T_KEY", "AKIA", 1);
    setenv("RQ_T_EMPTY", "", 1);
    unsetenv("RQ_T_MISSING");
    expands("", "");
    expands("plain", "plain");
    expands("$RQ_T_KEY", "AKIA");
    expands("${RQ_T_KEY}", "AKIA");
    expands("x${RQ_T_KEY}y", "xAKIAy");
    expands("$RQ_T_KEY.y", "AKIA.y");      /* names stop at non-alphanumerics */
    expands("[$RQ_T_MISSING]", "[]");      /* unset: empty, as os.ExpandEnv */
    expands("[${RQ_T_MISSING}]", "[]");
    expands("[$RQ_T_EMPTY]", "[]");
    expands("cost $", "cost $");           /* a final '$' stays */
    expands("a $ b", "a $ b");             /* '$' before no name stays */
    expands("a${}b", "ab");                /* bad syntax is eaten */
    expands("a${RQ_T_KEY", "aRQ_T_KEY");   /* "${" without '}': "${" eaten */
    expands("$1x", "x");                   /* special one-character names */
    expands("${RQ_T_KEY}${RQ_T_KEY}", "AKIAAKIA");
}

/* Parse text, expecting success. */
static void parses(const char *text, backup_use use, backup_config *c)
{
    char *err = NULL;
    int rc = backup_config_parse(text, use, c, &err);
    if (rc != 0)
        fail_msg("unexpected error for %s: %s", text, err);
    assert_null(err);
}

/* Parse text, expecting an error containing want. */
static void refuses(const char *text, backup_use use, const char *want)
{
    backup_config c;
    char *err = NULL;
    int rc = backup_config_parse(text, use, &c, &err);
    if (rc == 0)
        fail_msg("accepted: %s", text);
    assert_non_null(err);
    if (strstr(err, want) == NULL)
        fail_msg("error for %s is \"%s\", not about \"%s\"", text, err, want);
    free(err);
}

static void test_s3_config(void **st)
{
    backup_config c;
    parses("{\"version\":1,\"type\":\"s3\",\"interval\":\"5m\",\"timestamp\":true,\"no_compress\":false,"
           "\"vacuum\":true,\"sub\":{\"access_key_id\":\"k\",\"secret_access_key\":\"s\","
           "\"endpoint\":\"http://127.0.0.1:9000\",\"region\":\"eu-west-1\",\"bucket\":\"b\","
           "\"path\":\"backups/db.sqlite.gz\",\"force_path_style\":true}}",
           BACKUP_FOR_UPLOAD, &c);
    assert_int_equal(c.version, 1);
    assert_int_equal(c.type, BACKUP_TYPE_S3);
    assert_true(c.interval_ns == 300LL * 1000000000);
    assert_true(c.timestamp);
    assert_false(c.no_compress);
    assert_true(c.vacuum);
    assert_string_equal(c.access_key_id, "k");
    assert_string_equal(c.secret_access_key, "s");
    assert_string_equal(c.endpoint, "http://127.0.0.1:9000");
    assert_string_equal(c.region, "eu-west-1");
    assert_string_equal(c.bucket, "b");
    assert_string_equal(c.path, "backups/db.sqlite.gz");
    assert_true(c.force_path_style);
    backup_config_free(&c);
    /* Go matches field names whatever their case; unknown ones are ignored,
     * null leaves a field unset, version may be left out. */
    parses("{\"Type\":\"s3\",\"INTERVAL\":\"1s\",\"extra\":[1,2],\"timestamp\":null,"
           "\"sub\":{\"Bucket\":\"b\",\"path\":\"p\",\"region\":null}}",
           BACKUP_FOR_UPLOAD, &c);
    assert_int_equal(c.version, 0);
    assert_false(c.timestamp);
    assert_null(c.region);
    assert_string_equal(c.bucket, "b");
    backup_config_free(&c);
}

static void test_file_config(void **st)
{
    backup_config c;
    parses("{\"version\":1,\"type\":\"file\",\"interval\":\"1s\",\"no_compress\":true,"
           "\"sub\":{\"dir\":\"/tmp/backups/\",\"name\":\"backup.sqlite\"}}",
           BACKUP_FOR_UPLOAD, &c);
    assert_int_equal(c.type, BACKUP_TYPE_FILE);
    assert_string_equal(c.dir, "/tmp/backups"); /* cleaned as Go's filepath.Clean */
    assert_string_equal(c.name, "backup.sqlite");
    assert_true(c.no_compress);
    backup_config_free(&c);
    refuses("{\"type\":\"file\",\"interval\":\"1s\",\"sub\":{\"dir\":\"rel\",\"name\":\"b\"}}", BACKUP_FOR_UPLOAD,
            "directory path must be absolute");
    refuses("{\"type\":\"file\",\"interval\":\"1s\",\"sub\":{\"dir\":\"/d\",\"name\":\"../b\"}}", BACKUP_FOR_UPLOAD,
            "invalid file parameter");
    refuses("{\"type\":\"file\",\"interval\":\"1s\",\"sub\":{\"dir\":\"/d\",\"name\":\"a/b\"}}", BACKUP_FOR_UPLOAD,
            "invalid file parameter");
    refuses("{\"type\":\"file\",\"interval\":\"1s\",\"sub\":{\"dir\":\"/d\"}}", BACKUP_FOR_UPLOAD,
            "invalid file parameter");
    /* rqlite has no restore from the file type. */
    refuses("{\"type\":\"file\",\"sub\":{\"dir\":\"/d\",\"name\":\"b\"}}", BACKUP_FOR_RESTORE,
            "unsupported storage type");
}

static void test_durations(void **st)
{
    backup_config c;
    /* A number is nanoseconds (Go's float64 into time.Duration). */
    parses("{\"type\":\"s3\",\"interval\":1500000000,\"sub\":{\"bucket\":\"b\",\"path\":\"p\"}}", BACKUP_FOR_UPLOAD,
           &c);
    assert_true(c.interval_ns == 1500000000LL);
    backup_config_free(&c);
    parses("{\"type\":\"s3\",\"interval\":\"1h2m3.5s\",\"sub\":{\"bucket\":\"b\",\"path\":\"p\"}}",
           BACKUP_FOR_UPLOAD, &c);
    assert_true(c.interval_ns == 3723500000000LL);
    backup_config_free(&c);
    const char *bad[] = {"\"0s\"", "0", "\"-1s\"", "-5", "\"0\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "{\"type\":\"s3\",\"interval\":%s,\"sub\":{\"bucket\":\"b\",\"path\":\"p\"}}",
                 bad[i]);
        refuses(text, BACKUP_FOR_UPLOAD, "invalid interval");
    }
    refuses("{\"type\":\"s3\",\"interval\":\"soon\",\"sub\":{\"bucket\":\"b\",\"path\":\"p\"}}", BACKUP_FOR_UPLOAD,
            "time: invalid duration");
    refuses("{\"type\":\"s3\",\"interval\":\"10\",\"sub\":{\"bucket\":\"b\",\"path\":\"p\"}}", BACKUP_FOR_UPLOAD,
            "missing unit");
    refuses("{\"type\":\"s3\",\"interval\":true,\"sub\":{\"bucket\":\"b\",\"path\":\"p\"}}", BACKUP_FOR_UPLOAD,
            "invalid duration");
    refuses("{\"type\":\"s3\",\"interval\":null,\"sub\":{\"bucket\":\"b\",\"path\":\"p\"}}", BACKUP_FOR_UPLOAD,
            "invalid duration");
    refuses("{\"type\":\"s3\",\"sub\":{\"bucket\":\"b\",\"path\":\"p\"}}", BACKUP_FOR_UPLOAD, "interval is required");
    /* Restore: the timeout defaults to 30 s and must be positive. */
    parses("{\"version\":1,\"type\":\"s3\",\"sub\":{\"bucket\":\"b\",\"path\":\"p\"}}", BACKUP_FOR_RESTORE, &c);
    assert_true(c.timeout_ns == 30000000000LL);
    assert_false(c.continue_on_failure);
    backup_config_free(&c);
    parses("{\"type\":\"s3\",\"timeout\":\"2s\",\"continue_on_failure\":true,\"sub\":{\"bucket\":\"b\",\"path\":\"p\"}}",
           BACKUP_FOR_RESTORE, &c);
    assert_true(c.timeout_ns == 2000000000LL);
    assert_true(c.continue_on_failure);
    backup_config_free(&c);
    refuses("{\"type\":\"s3\",\"timeout\":\"-2s\",\"sub\":{\"bucket\":\"b\",\"path\":\"p\"}}", BACKUP_FOR_RESTORE,
            "invalid interval");
}

static void test_bad_configs(void **st)
{
    const char *s3 = ",\"interval\":\"1s\",\"sub\":{\"bucket\":\"b\",\"path\":\"p\"}}";
    char text[512];
    refuses("", BACKUP_FOR_UPLOAD, "invalid JSON");
    refuses("not json", BACKUP_FOR_UPLOAD, "invalid JSON");
    refuses("{\"version\":1,", BACKUP_FOR_UPLOAD, "invalid JSON");
    refuses("[1,2]", BACKUP_FOR_UPLOAD, "cannot unmarshal array");
    refuses("\"s3\"", BACKUP_FOR_RESTORE, "cannot unmarshal string");
    snprintf(text, sizeof text, "{\"version\":2,\"type\":\"s3\"%s", s3);
    refuses(text, BACKUP_FOR_UPLOAD, "invalid version");
    refuses(text, BACKUP_FOR_RESTORE, "invalid version");
    snprintf(text, sizeof text, "{\"version\":\"1\",\"type\":\"s3\"%s", s3);
    refuses(text, BACKUP_FOR_UPLOAD, "cannot unmarshal string into Go struct field Config.version of type int");
    snprintf(text, sizeof text, "{\"version\":1.5,\"type\":\"s3\"%s", s3);
    refuses(text, BACKUP_FOR_UPLOAD, "cannot unmarshal number");
    snprintf(text, sizeof text, "{\"version\":1,\"type\":\"azure\"%s", s3);
    refuses(text, BACKUP_FOR_UPLOAD, "unsupported storage type \"azure\"");
    snprintf(text, sizeof text, "{\"version\":1,\"type\":7%s", s3);
    refuses(text, BACKUP_FOR_UPLOAD, "unsupported storage type");
    snprintf(text, sizeof text, "{\"version\":1%s", s3);
    refuses(text, BACKUP_FOR_UPLOAD, "unsupported storage type");
    refuses("{\"type\":\"s3\",\"interval\":\"1s\",\"timestamp\":\"true\",\"sub\":{\"bucket\":\"b\",\"path\":\"p\"}}",
            BACKUP_FOR_UPLOAD, "of type bool");
    refuses("{\"type\":\"s3\",\"interval\":\"1s\"}", BACKUP_FOR_UPLOAD, "\"sub\" is required");
    refuses("{\"type\":\"s3\",\"interval\":\"1s\",\"sub\":[]}", BACKUP_FOR_UPLOAD, "cannot unmarshal array");
    refuses("{\"type\":\"s3\",\"interval\":\"1s\",\"sub\":{\"bucket\":5,\"path\":\"p\"}}", BACKUP_FOR_UPLOAD,
            "S3Config.bucket of type string");
    refuses("{\"type\":\"s3\",\"interval\":\"1s\",\"sub\":{\"path\":\"p\"}}", BACKUP_FOR_UPLOAD, "\"bucket\" is required");
    refuses("{\"type\":\"s3\",\"interval\":\"1s\",\"sub\":{\"bucket\":\"b\"}}", BACKUP_FOR_UPLOAD, "\"path\"");
}

/* gcs is rqlite's, but this build has no client: refused, saying so. */
static void test_gcs_refused(void **st)
{
    const char *gcs = "{\"version\":1,\"type\":\"gcs\",\"interval\":\"1s\",\"sub\":{\"project_id\":\"p\","
                      "\"bucket\":\"b\",\"name\":\"n\",\"credentials_path\":\"/c.json\"}}";
    refuses(gcs, BACKUP_FOR_UPLOAD, "\"gcs\": Google Cloud Storage is not supported by this build");
    refuses(gcs, BACKUP_FOR_RESTORE, "not supported by this build");
}

static void test_timestamped(void **st)
{
    time_t t = 1704164645; /* 2024-01-02 03:04:05 UTC */
    char *p = backup_timestamped("backups/daily/db.sqlite.gz", t);
    assert_string_equal(p, "backups/daily/20240102030405_db.sqlite.gz");
    free(p);
    p = backup_timestamped("db.sqlite", t);
    assert_string_equal(p, "20240102030405_db.sqlite");
    free(p);
    p = backup_timestamped("dir/", t);
    assert_string_equal(p, "dir/20240102030405_");
    free(p);
}

static void test_load_file(void **st)
{
    char path[] = "/tmp/rq-test-backup-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "{\"version\":1,\"type\":\"s3\",\"interval\":\"${RQ_T_IVL}\","
                       "\"sub\":{\"bucket\":\"$RQ_T_BUCKET\",\"path\":\"p\",\"secret_access_key\":\"$RQ_T_NONE\"}}";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    setenv("RQ_T_IVL", "2s", 1);
    setenv("RQ_T_BUCKET", "from-env", 1);
    unsetenv("RQ_T_NONE");
    backup_config c;
    char *err = NULL;
    assert_int_equal(backup_config_load(path, BACKUP_FOR_UPLOAD, &c, &err), 0);
    assert_string_equal(c.bucket, "from-env");
    assert_string_equal(c.secret_access_key, "");
    assert_true(c.interval_ns == 2000000000LL);
    backup_config_free(&c);
    /* An expanded value can break the file too: the error says which file. */
    setenv("RQ_T_IVL", "0s", 1);
    assert_int_equal(backup_config_load(path, BACKUP_FOR_UPLOAD, &c, &err), -1);
    assert_non_null(strstr(err, "failed to parse auto-backup file"));
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "invalid interval"));
    free(err);
    err = NULL;
    unlink(path);
    assert_int_equal(backup_config_load(path, BACKUP_FOR_RESTORE, &c, &err), -1);
    assert_non_null(strstr(err, "failed to read auto-restore file"));
    assert_non_null(strstr(err, "No such file or directory"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand_env),  cmocka_unit_test(test_s3_config),
        cmocka_unit_test(test_file_config), cmocka_unit_test(test_durations),
        cmocka_unit_test(test_bad_configs), cmocka_unit_test(test_gcs_refused),
        cmocka_unit_test(test_timestamped), cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
