/* Unit tests for auth/: the credentials file, permission checks, bcrypt,
 * Basic credentials, reloads (on request and when the file changes) and
 * files that must stop the node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"

/* bcrypt of "s3cret" at cost 4, in its three spellings, and of "pa:ss". */
#define HASH_2B "$2b$04$abcdefghijklmnopqrstuuLZYjhNQAOdpbzt4WxWlUHjv1wsyH5DG"
#define HASH_2A "$2a$04$abcdefghijklmnopqrstuuLZYjhNQAOdpbzt4WxWlUHjv1wsyH5DG"
#define HASH_2Y "$2y$04$abcdefghijklmnopqrstuuLZYjhNQAOdpbzt4WxWlUHjv1wsyH5DG"
#define HASH_COLON "$2b$05$ABCDEFGHIJKLMNOPQRSTUu.kFjzHGfFNnYbrBycMawbuE4GU5Ca4e"

static char dir[64];

static int setup(void **st)
{
    snprintf(dir, sizeof dir, "/tmp/test_auth_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **st)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* text into DIR/name (replaced by a rename, as editors do); returns the path. */
static const char *writeFile(const char *name, const char *text)
{
    static char path[128];
    char tmp[160];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
    return path;
}

static auth *openText(const char *text)
{
    auth *a = NULL;
    char *err = NULL;
    int rc = auth_open(writeFile("auth.json", text), &a, &err);
    if (rc != 0)
        fail_msg("auth_open: %s", err);
    return a;
}

static const char *example =
    "[{\"username\": \"fiona\", \"password\": \"secret1\", \"perms\": [\"all\"]},\n"
    " {\"username\": \"reader\", \"password\": \"secret2\", \"perms\": [\"query\", \"backup\", \"join-read-only\"]},\n"
    " {\"username\": \"writer\", \"password\": \"w\", \"perms\": [\"execute\", \"no-such-perm\"], \"extra\": 1},\n"
    " {\"username\": \"*\", \"perms\": [\"status\", \"ready\"]}]\n";

static void test_perm_names(void **st)
{
    const char *names[AUTH_PERM_COUNT] = {"all",    "execute",        "query",  "load",     "backup",
                                          "status", "ready",          "join",   "join-read-only",
                                          "remove", "snapshot",       "leader-ops", "ui"};
    for (int i = 0; i < AUTH_PERM_COUNT; i++) {
        assert_string_equal(auth_perm_name(1u << i), names[i]);
        assert_int_equal(auth_perm_bit(names[i]), 1u << i);
    }
    assert_int_equal(auth_perm_bit("join-read-replica"), AUTH_PERM_JOIN_READ_ONLY);
    assert_int_equal(auth_perm_bit("ALL"), 0);
    assert_int_equal(auth_perm_bit("no-such-perm"), 0);
    assert_null(auth_perm_name(0));
    assert_null(auth_perm_name(AUTH_PERM_EXECUTE | AUTH_PERM_QUERY));
}

static void test_permissions(void **st)
{
    auth *a = openText(example);
    /* "*": everyone, anonymous or not, whatever the password. */
    assert_true(auth_allowed(a, NULL, NULL, AUTH_PERM_STATUS));
    assert_true(auth_allowed(a, NULL, NULL, AUTH_PERM_READY));
    assert_true(auth_allowed(a, "nobody", "x", AUTH_PERM_STATUS));
    assert_true(auth_allowed(a, "fiona", "wrong", AUTH_PERM_READY));
    assert_false(auth_allowed(a, NULL, NULL, AUTH_PERM_QUERY));
    /* Users with and without the permission, right and wrong passwords. */
    assert_true(auth_allowed(a, "reader", "secret2", AUTH_PERM_QUERY));
    assert_true(auth_allowed(a, "reader", "secret2", AUTH_PERM_BACKUP));
    assert_false(auth_allowed(a, "reader", "secret2", AUTH_PERM_EXECUTE));
    assert_false(auth_allowed(a, "reader", "secret1", AUTH_PERM_QUERY));
    assert_false(auth_allowed(a, "reader", NULL, AUTH_PERM_QUERY));
    assert_false(auth_allowed(a, "reader", "", AUTH_PERM_QUERY));
    assert_false(auth_allowed(a, "nobody", "secret2", AUTH_PERM_QUERY));
    /* all is every permission. */
    for (int i = 0; i < AUTH_PERM_COUNT; i++)
        assert_true(auth_allowed(a, "fiona", "secret1", 1u << i));
    assert_false(auth_allowed(a, "fiona", "secret2", AUTH_PERM_QUERY));
    /* Several needed: each one from the user or from "*" (/db/request). */
    assert_false(auth_allowed(a, "reader", "secret2", AUTH_PERM_QUERY | AUTH_PERM_EXECUTE));
    assert_false(auth_allowed(a, "writer", "w", AUTH_PERM_QUERY | AUTH_PERM_EXECUTE));
    assert_true(auth_allowed(a, "writer", "w", AUTH_PERM_EXECUTE | AUTH_PERM_STATUS));
    assert_true(auth_allowed(a, "fiona", "secret1", AUTH_PERM_QUERY | AUTH_PERM_EXECUTE));
    /* join-read-replica is join-read-only; an unknown name grants nothing. */
    assert_true(auth_allowed(a, "reader", "secret2", AUTH_PERM_JOIN_READ_ONLY));
    assert_false(auth_allowed(a, "reader", "secret2", AUTH_PERM_JOIN));
    assert_true(auth_allowed(a, "writer", "w", AUTH_PERM_EXECUTE));
    /* Nobody logs in as "*". */
    assert_false(auth_allowed(a, "*", "", AUTH_PERM_QUERY));
    assert_false(auth_allowed(a, "*", NULL, AUTH_PERM_QUERY));
    auth_close(a);

    /* "*" with all: everything is open. */
    a = openText("[{\"username\": \"*\", \"perms\": [\"all\"]}]");
    assert_true(auth_allowed(a, NULL, NULL, AUTH_PERM_LOAD | AUTH_PERM_REMOVE | AUTH_PERM_UI));
    auth_close(a);
    /* No users: nothing is. */
    a = openText("[]");
    assert_false(auth_allowed(a, NULL, NULL, AUTH_PERM_STATUS));
    assert_false(auth_allowed(a, "fiona", "secret1", AUTH_PERM_STATUS));
    auth_close(a);
}

/* The plain-text compare: every near miss fails (lengths, prefixes, a
 * difference in the last byte, bytes past the end). */
static void test_plaintext_compare(void **st)
{
    auth *a = openText("[{\"username\": \"u\", \"password\": \"secret1\", \"perms\": [\"query\"]},"
                       " {\"username\": \"empty\", \"password\": \"\", \"perms\": [\"query\"]}]");
    const char *misses[] = {"", "s", "secret", "secret2", "secret1 ", "secret11", "Secret1", "secret1\t",
                            "ecret1", "xsecret1", "SECRET1"};
    for (size_t i = 0; i < sizeof misses / sizeof *misses; i++)
        assert_false(auth_allowed(a, "u", misses[i], AUTH_PERM_QUERY));
    assert_true(auth_allowed(a, "u", "secret1", AUTH_PERM_QUERY));
    /* An empty password set in the file is that password. */
    assert_true(auth_allowed(a, "empty", "", AUTH_PERM_QUERY));
    assert_false(auth_allowed(a, "empty", "x", AUTH_PERM_QUERY));
    auth_close(a);
}

/* A bcrypt hash in the file: its password works, the hash itself never. */
static void test_bcrypt(void **st)
{
    auth *a = openText("[{\"username\": \"b\", \"password\": \"" HASH_2B "\", \"perms\": [\"query\"]},"
                       " {\"username\": \"a\", \"password\": \"" HASH_2A "\", \"perms\": [\"query\"]},"
                       " {\"username\": \"y\", \"password\": \"" HASH_2Y "\", \"perms\": [\"query\"]},"
                       " {\"username\": \"c\", \"password\": \"" HASH_COLON "\", \"perms\": [\"all\"]}]");
    const char *users[] = {"b", "a", "y"};
    const char *hashes[] = {HASH_2B, HASH_2A, HASH_2Y};
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 2; k++) /* twice: the second from the cache */
            assert_true(auth_allowed(a, users[i], "s3cret", AUTH_PERM_QUERY));
        for (int k = 0; k < 3; k++)
            assert_false(auth_allowed(a, users[i], hashes[k], AUTH_PERM_QUERY));
        assert_false(auth_allowed(a, users[i], "s3cre", AUTH_PERM_QUERY));
        assert_false(auth_allowed(a, users[i], "s3cret ", AUTH_PERM_QUERY));
        assert_false(auth_allowed(a, users[i], "", AUTH_PERM_QUERY));
        assert_false(auth_allowed(a, users[i], "s3cret", AUTH_PERM_EXECUTE));
        assert_true(auth_allowed(a, users[i], "s3cret", AUTH_PERM_QUERY)); /* after the misses */
    }
    assert_true(auth_allowed(a, "c", "pa:ss", AUTH_PERM_LOAD));
    assert_false(auth_allowed(a, "c", HASH_COLON, AUTH_PERM_LOAD));
    /* A hash cannot be sent to another node as a password. */
    char *why = NULL;
    assert_null(auth_basic_header(a, "b", &why));
    assert_non_null(strstr(why, "bcrypt"));
    free(why);
    auth_close(a);
}

/* Later entries for a username replace earlier ones, whole. */
static void test_duplicates_override(void **st)
{
    auth *a = openText("[{\"username\": \"u\", \"password\": \"old\", \"perms\": [\"query\", \"execute\"]},"
                       " {\"username\": \"v\", \"password\": \"v\", \"perms\": [\"load\"]},"
                       " {\"username\": \"u\", \"password\": \"new\", \"perms\": [\"backup\"]},"
                       " {\"username\": \"*\", \"perms\": [\"status\"]},"
                       " {\"username\": \"*\", \"perms\": [\"ready\"]}]");
    assert_false(auth_allowed(a, "u", "old", AUTH_PERM_BACKUP));
    assert_false(auth_allowed(a, "u", "new", AUTH_PERM_QUERY));
    assert_false(auth_allowed(a, "u", "new", AUTH_PERM_EXECUTE));
    assert_true(auth_allowed(a, "u", "new", AUTH_PERM_BACKUP));
    assert_true(auth_allowed(a, "v", "v", AUTH_PERM_LOAD));
    assert_false(auth_allowed(a, NULL, NULL, AUTH_PERM_STATUS));
    assert_true(auth_allowed(a, NULL, NULL, AUTH_PERM_READY));
    auth_close(a);
}

/* Files that must stop the node: each is refused with a message. */
static void test_bad_files(void **st)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"", "invalid JSON"},
        {"[{\"username\": \"u\", \"password\": \"p\"}", "invalid JSON"},
        {"[] x", "invalid JSON"},
        {"{\"username\": \"u\", \"password\": \"p\"}", "not a JSON array"},
        {"\"fiona\"", "not a JSON array"},
        {"null", "not a JSON array"},
        {"[1]", "entry 1 is not a JSON object"},
        {"[{\"username\": \"u\", \"password\": \"p\"}, []]", "entry 2 is not a JSON object"},
        {"[{\"password\": \"p\", \"perms\": [\"all\"]}]", "entry 1 has no username"},
        {"[{\"username\": \"\", \"password\": \"p\"}]", "entry 1 has no username"},
        {"[{\"username\": 7, \"password\": \"p\"}]", "entry 1 has no username"},
        {"[{\"username\": \"u\", \"perms\": [\"all\"]}]", "entry 1 (user u) has no password"},
        {"[{\"username\": \"u\", \"password\": 1}]", "(user u): password must be a string"},
        {"[{\"username\": \"u\", \"password\": \"p\", \"perms\": \"all\"}]", "perms must be an array"},
        {"[{\"username\": \"u\", \"password\": \"p\", \"perms\": [\"all\", 3]}]", "perms must be an array"},
        {"[{\"username\": \"u\", \"password\": \"$2b$04$short\"}]", "not a valid one"},
        {"[{\"username\": \"u\", \"username\": \"v\", \"password\": \"p\"}]", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        auth *a = NULL;
        char *err = NULL;
        const char *path = writeFile("bad.json", cases[i].text);
        assert_int_equal(auth_open(path, &a, &err), -1);
        assert_null(a);
        assert_non_null(err);
        if (strstr(err, cases[i].want) == NULL || strstr(err, path) == NULL)
            fail_msg("case %zu: %s", i, err);
        free(err);
    }
    /* Missing, a directory, unreadable. */
    auth *a = NULL;
    char *err = NULL;
    char path[128];
    snprintf(path, sizeof path, "%s/no/such.json", dir);
    assert_int_equal(auth_open(path, &a, &err), -1);
    assert_non_null(strstr(err, "No such file or directory"));
    free(err);
    assert_int_equal(auth_open(dir, &a, &err), -1);
    assert_non_null(strstr(err, "Is a directory"));
    free(err);
    if (geteuid() != 0) {
        const char *p = writeFile("secret.json", "[]");
        chmod(p, 0);
        assert_int_equal(auth_open(p, &a, &err), -1);
        assert_non_null(strstr(err, "Permission denied"));
        free(err);
    }
}

static void test_basic_parse(void **st)
{
    char *u, *p;
    /* "fiona:secret1", "a:b:c", ":", "Aladdin:open sesame" */
    assert_int_equal(auth_parse_basic("Basic ZmlvbmE6c2VjcmV0MQ==", 26, &u, &p), 0);
    assert_string_equal(u, "fiona");
    assert_string_equal(p, "secret1");
    free(u), free(p);
    assert_int_equal(auth_parse_basic("basic YTpiOmM=", 14, &u, &p), 0);
    assert_string_equal(u, "a");
    assert_string_equal(p, "b:c");
    free(u), free(p);
    assert_int_equal(auth_parse_basic("BASIC Og==", 10, &u, &p), 0);
    assert_string_equal(u, "");
    assert_string_equal(p, "");
    free(u), free(p);
    const char *ok = "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==";
    assert_int_equal(auth_parse_basic(ok, strlen(ok), &u, &p), 0);
    assert_string_equal(p, "open sesame");
    free(u), free(p);
    /* Not Basic credentials: anonymous. */
    static const char *bad[] = {
        "",
        "Basic",
        "Basic ",
        "Basic  ZmlvbmE6c2VjcmV0MQ==",  /* two spaces */
        "Bearer ZmlvbmE6c2VjcmV0MQ==",
        "BasicZmlvbmE6c2VjcmV0MQ==",
        "Basic Zmlvbm E6c2VjcmV0MQ=",   /* a space inside */
        "Basic Zmlvbm%6c2VjcmV0MQ==",   /* not base64 */
        "Basic Zmlvbm",                 /* not a multiple of 4 */
        "Basic Zm=vbmE6c2VjcmV0MQ==",   /* '=' inside */
        "Basic Zmlvbm===",
        "Basic ZmlvbmE=",               /* "fiona": no colon */
        "Basic Zmlvbm-6c2VjcmV0MQ==",   /* URL-safe alphabet */
        "Basic Zmlvbm_6c2VjcmV0MQ==",
        "Basic Zmlvbg",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        u = p = (char *)"x";
        if (auth_parse_basic(bad[i], strlen(bad[i]), &u, &p) != -1)
            fail_msg("accepted %s", bad[i]);
        assert_null(u);
        assert_null(p);
    }
    assert_int_equal(auth_parse_basic(NULL, 0, &u, &p), -1);
    /* NUL bytes: in the value itself, and decoded ("a\0b:c" is YQBiOmM=). */
    const char nul[] = "Basic Zmlv\0mE6c2VjcmV0MQ==";
    assert_int_equal(auth_parse_basic(nul, sizeof nul - 1, &u, &p), -1);
    assert_int_equal(auth_parse_basic("Basic YQBiOmM=", 14, &u, &p), -1);
    /* "a:b\0" is YTpiAA== */
    assert_int_equal(auth_parse_basic("Basic YTpiAA==", 14, &u, &p), -1);
    /* Huge: refused, not decoded. */
    size_t n = 1 << 20;
    char *huge = malloc(n + 7);
    memcpy(huge, "Basic ", 6);
    memset(huge + 6, 'A', n);
    huge[n + 6] = '\0';
    assert_int_equal(auth_parse_basic(huge, n + 6, &u, &p), -1);
    /* Every byte value after "Basic ", in every position of a short value. */
    char v[10] = "Basic YTpi";
    for (int pos = 6; pos < 10; pos++)
        for (int ch = 0; ch < 256; ch++) {
            memcpy(v, "Basic YTpi", 10);
            v[pos] = (char)ch;
            if (auth_parse_basic(v, 10, &u, &p) == 0)
                free(u), free(p);
        }
    free(huge);
}

static void test_basic_header(void **st)
{
    auth *a = openText(example);
    char *why = NULL;
    char *h = auth_basic_header(a, "fiona", &why);
    assert_string_equal(h, "Basic ZmlvbmE6c2VjcmV0MQ==");
    char *u, *p;
    assert_int_equal(auth_parse_basic(h, strlen(h), &u, &p), 0);
    assert_string_equal(u, "fiona");
    assert_string_equal(p, "secret1");
    free(u), free(p);
    auth_free_secret(h);
    h = auth_basic_header(a, "writer", NULL); /* "writer:w": one byte of padding */
    assert_string_equal(h, "Basic d3JpdGVyOnc=");
    auth_free_secret(h);
    assert_null(auth_basic_header(a, "nobody", &why));
    assert_string_equal(why, "user nobody is not a user in the credentials file");
    free(why);
    assert_null(auth_basic_header(a, "*", NULL));
    auth_close(a);
}

/* auth_reload: a good file replaces the credentials, a bad one keeps them. */
static void test_reload(void **st)
{
    auth *a = openText(example);
    writeFile("auth.json", "[{\"username\": \"fiona\", \"password\": \"changed\", \"perms\": [\"query\"]}]");
    char *err = NULL;
    assert_int_equal(auth_reload(a, &err), 0);
    assert_false(auth_allowed(a, "fiona", "secret1", AUTH_PERM_QUERY));
    assert_true(auth_allowed(a, "fiona", "changed", AUTH_PERM_QUERY));
    assert_false(auth_allowed(a, "fiona", "changed", AUTH_PERM_EXECUTE));
    assert_false(auth_allowed(a, NULL, NULL, AUTH_PERM_STATUS));
    writeFile("auth.json", "[{\"username\": \"fiona\"");
    assert_int_equal(auth_reload(a, &err), -1);
    assert_non_null(strstr(err, "invalid JSON"));
    free(err);
    assert_true(auth_allowed(a, "fiona", "changed", AUTH_PERM_QUERY));
    char path[128];
    snprintf(path, sizeof path, "%s/auth.json", dir);
    unlink(path);
    assert_int_equal(auth_reload(a, NULL), -1);
    assert_true(auth_allowed(a, "fiona", "changed", AUTH_PERM_QUERY));
    auth_close(a);
}

/* Poll fn(a) until it is true, 5 s at most (the file is looked at once a
 * second). */
static bool eventually(auth *a, const char *user, const char *pass, unsigned perm, bool want)
{
    for (int i = 0; i < 500; i++) {
        if (auth_allowed(a, user, pass, perm) == want)
            return true;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* A changed file is picked up by the requests that follow, without a
 * signal: rewritten in place with the same size, replaced by a rename; a
 * bad version is skipped and the next good one taken. */
static void test_reload_on_change(void **st)
{
    auth *a = openText("[{\"username\": \"u\", \"password\": \"aaaa\", \"perms\": [\"query\"]}]");
    assert_true(auth_allowed(a, "u", "aaaa", AUTH_PERM_QUERY));
    /* In place, same size: only the mtime tells. */
    char path[128];
    snprintf(path, sizeof path, "%s/auth.json", dir);
    FILE *f = fopen(path, "r+");
    assert_non_null(f);
    fputs("[{\"username\": \"u\", \"password\": \"bbbb\", \"perms\": [\"query\"]}]", f);
    fclose(f);
    struct timespec later[2] = {{0, UTIME_OMIT}, {time(NULL) + 5, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, later, 0), 0);
    assert_true(eventually(a, "u", "bbbb", AUTH_PERM_QUERY, true));
    assert_false(auth_allowed(a, "u", "aaaa", AUTH_PERM_QUERY));
    /* A broken version: the credentials before it stay. */
    writeFile("auth.json", "[{\"username\": \"u\", \"password\": \"cccc\"");
    assert_false(eventually(a, "u", "bbbb", AUTH_PERM_QUERY, false));
    /* Then a good one by rename. */
    writeFile("auth.json", "[{\"username\": \"u\", \"password\": \"dddd\", \"perms\": [\"query\"]}]");
    assert_true(eventually(a, "u", "dddd", AUTH_PERM_QUERY, true));
    auth_close(a);
}

typedef struct hammer {
    auth *a;
    volatile bool stop;
    int wrong;
} hammer;

static void *checker(void *arg)
{
    hammer *h = arg;
    while (!h->stop) {
        /* fiona's password and perms are the same in both versions. */
        if (!auth_allowed(h->a, "fiona", "secret1", AUTH_PERM_QUERY) ||
            auth_allowed(h->a, "fiona", "nope", AUTH_PERM_QUERY))
            __atomic_add_fetch(&h->wrong, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* Checks on many threads while the file is reloaded over and over. */
static void test_threads(void **st)
{
    const char *v1 = "[{\"username\": \"fiona\", \"password\": \"secret1\", \"perms\": [\"all\"]}]";
    const char *v2 = "[{\"username\": \"x\", \"password\": \"y\"},"
                     " {\"username\": \"fiona\", \"password\": \"secret1\", \"perms\": [\"query\"]}]";
    hammer h = {.a = openText(v1)};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, checker, &h);
    for (int i = 0; i < 200; i++) {
        writeFile("auth.json", i % 2 ? v1 : v2);
        assert_int_equal(auth_reload(h.a, NULL), 0);
    }
    h.stop = true;
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(h.wrong, 0);
    auth_close(h.a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_perm_names),
        cmocka_unit_test(test_permissions),
        cmocka_unit_test(test_plaintext_compare),
        cmocka_unit_test(test_bcrypt),
        cmocka_unit_test(test_duplicates_override),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_basic_parse),
        cmocka_unit_test(test_basic_header),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_reload_on_change),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
