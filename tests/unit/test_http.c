/* Unit tests for http: the API over a fake single-process store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"
#include "http/internal.h"

void fake_store_set_leader(store *s, bool leader, bool known, const char *api);
int fake_store_joins(store *s);

static int freePort(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, len), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

typedef struct fixture {
    char dir[64];
    char base[64];
    config cfg;
    http_server *h;
    store *st;
} fixture;

/* The credentials file of setupAuth, written by authFile(). */
static const char *auth_text;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/rq-http-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char http[32], raft[32];
    int port = freePort();
    snprintf(http, sizeof http, "127.0.0.1:%d", port);
    int rport;
    while ((rport = freePort()) == port) /* the kernel may hand out a port twice */
        ;
    snprintf(raft, sizeof raft, "127.0.0.1:%d", rport);
    snprintf(f->base, sizeof f->base, "http://%s", http);
    char auth_path[128];
    snprintf(auth_path, sizeof auth_path, "%s/auth.json", f->dir);
    char *argv[] = {"rqlited", "-node-id", "1", "-http-addr", http, "-raft-addr", raft, "-auth", auth_path, f->dir};
    int code;
    if (auth_text) {
        FILE *af = fopen(auth_path, "w");
        assert_non_null(af);
        fputs(auth_text, af);
        fclose(af);
        assert_int_equal(config_parse(&f->cfg, 10, argv, &code), 0);
        char *aerr = NULL;
        assert_int_equal(auth_open(auth_path, &f->cfg.creds, &aerr), 0);
    } else {
        argv[7] = f->dir;
        assert_int_equal(config_parse(&f->cfg, 8, argv, &code), 0);
    }
    char *err = NULL;
    assert_int_equal(http_server_start(&f->cfg, &f->h, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    http_server_stop(f->h);
    if (f->st)
        store_close(f->st);
    auth_close(f->cfg.creds);
    config_free(&f->cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void openStore(fixture *f)
{
    char *err = NULL;
    assert_int_equal(store_open(&f->cfg, &f->st, &err), 0);
    http_server_set_store(f->h, f->st);
}

typedef struct resp {
    long status;
    buf body;
    char ctype[128];
    char location[256];
    char www_auth[64], allow_headers[64], allow_creds[16];
} resp;

static size_t onBody(char *p, size_t s, size_t n, void *ud)
{
    buf_append(ud, p, s * n);
    return s * n;
}

/* The value of header name in the header line p (len bytes), into out. */
static void headerValue(const char *p, size_t len, const char *name, char *out, size_t n)
{
    size_t k = strlen(name);
    if (len < k + 4 || strncasecmp(p, name, k) != 0 || p[k] != ':')
        return;
    snprintf(out, n, "%.*s", (int)(len - k - 4), p + k + 2);
}

static size_t onHeader(char *p, size_t s, size_t n, void *ud)
{
    resp *r = ud;
    size_t len = s * n;
    headerValue(p, len, "Location", r->location, sizeof r->location);
    headerValue(p, len, "WWW-Authenticate", r->www_auth, sizeof r->www_auth);
    headerValue(p, len, "Access-Control-Allow-Headers", r->allow_headers, sizeof r->allow_headers);
    headerValue(p, len, "Access-Control-Allow-Credentials", r->allow_creds, sizeof r->allow_creds);
    return len;
}

/* The request, with an Authorization header when authz is not NULL. */
static resp callAuth(fixture *f, const char *method, const char *path, const char *body, const char *ctype,
                     const char *authz);

static resp call(fixture *f, const char *method, const char *path, const char *body, const char *ctype)
{
    return callAuth(f, method, path, body, ctype, NULL);
}

static resp callAuth(fixture *f, const char *method, const char *path, const char *body, const char *ctype,
                     const char *authz)
{
    resp r;
    memset(&r, 0, sizeof r);
    buf_init(&r.body);
    char url[512];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, onBody);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, onHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    struct curl_slist *h = NULL;
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        char hdr[128];
        snprintf(hdr, sizeof hdr, "Content-Type: %s", ctype ? ctype : "application/json");
        h = curl_slist_append(h, hdr);
    }
    if (authz) {
        buf a = BUF_INIT;
        buf_printf(&a, "Authorization: %s", authz);
        h = curl_slist_append(h, a.data);
        buf_free(&a);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r.ctype, sizeof r.ctype, "%s", ct ? ct : "");
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (r.body.data == NULL) { /* empty body: still a string */
        buf_reserve(&r.body, 0);
        r.body.data[0] = '\0';
    }
    return r;
}

static void expect(fixture *f, const char *method, const char *path, const char *body, long code,
                   const char *want)
{
    resp r = call(f, method, path, body, NULL);
    if (r.status != code)
        fail_msg("%s %s: status %ld, want %ld (%s)", method, path, r.status, code, r.body.data);
    assert_string_equal(r.body.data, want);
    buf_free(&r.body);
}

#define EXPECT(f, m, p, b, code, want) expect(f, m, p, b, code, want)

static void test_before_store(void **state)
{
    fixture *f = *state;
    EXPECT(f, "POST", "/db/execute", "[\"SELECT 1\"]", 200, "{\"results\":[],\"error\":\"store not open\"}");
    EXPECT(f, "GET", "/nodes", NULL, 503, "store nodes: store not open\n");
    EXPECT(f, "GET", "/readyz", NULL, 503, "[+]node ok\n[+]leader does not exist");
    EXPECT(f, "GET", "/readyz?noleader", NULL, 200, "[+]node ok");
    EXPECT(f, "GET", "/status?key=store", NULL, 200, "{\"open\":false}");
}

static void test_data_endpoints(void **state)
{
    fixture *f = *state;
    openStore(f);
    EXPECT(f, "POST", "/db/execute", "[\"CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)\", "
                                     "[\"INSERT INTO foo(name) VALUES(?)\", \"fiona\"]]", 200,
           "{\"results\":[{},{\"last_insert_id\":1,\"rows_affected\":1}]}");
    EXPECT(f, "GET", "/db/query?q=SELECT%20*%20FROM%20foo", NULL, 200,
           "{\"results\":[{\"columns\":[\"id\",\"name\"],\"types\":[\"integer\",\"text\"],"
           "\"values\":[[1,\"fiona\"]]}]}");
    EXPECT(f, "POST", "/db/query?associative", "[\"SELECT name FROM foo\"]", 200,
           "{\"results\":[{\"types\":{\"name\":\"text\"},\"rows\":[{\"name\":\"fiona\"}]}]}");
    EXPECT(f, "GET", "/db/query", NULL, 200, "{\"results\":[]}");
    EXPECT(f, "GET", "/db/query?q=", NULL, 400, "query parameter not set\n");
    EXPECT(f, "POST", "/db/request?pretty", "[\"SELECT 1\"]", 200,
           "{\n    \"results\": [\n        {\n            \"columns\": [\n                \"1\"\n"
           "            ],\n            \"types\": [\n                \"integer\"\n            ],\n"
           "            \"values\": [\n                [\n                    1\n                ]\n"
           "            ]\n        }\n    ]\n}");
    EXPECT(f, "POST", "/db/execute?raft_index", "[\"INSERT INTO foo(name) VALUES('x')\"]", 200,
           "{\"results\":[{\"last_insert_id\":2,\"rows_affected\":1}],\"raft_index\":42}");
    EXPECT(f, "POST", "/db/request", "[\"SELECT COUNT(*) FROM foo\"]", 200,
           "{\"results\":[{\"columns\":[\"COUNT(*)\"],\"types\":[\"integer\"],\"values\":[[2]]}]}");
    EXPECT(f, "POST", "/db/execute", "[\"PRAGMA journal_mode=DELETE\"]", 200,
           "{\"results\":[],\"error\":\"disallowed pragma\"}");
    resp r = call(f, "POST", "/db/execute", "INSERT INTO foo(name) VALUES('plain')", "text/plain");
    assert_string_equal(r.body.data, "{\"results\":[{\"last_insert_id\":3,\"rows_affected\":1}]}");
    assert_string_equal(r.ctype, "application/json; charset=utf-8");
    buf_free(&r.body);
    r = call(f, "POST", "/db/execute?timings", "[\"SELECT 1\"]", NULL);
    assert_non_null(strstr(r.body.data, "],\"time\":"));
    buf_free(&r.body);
    /* freshness parameter validation */
    EXPECT(f, "GET", "/db/query?q=SELECT%201&freshness=bogus", NULL, 400, "freshness is not a valid duration\n");
    EXPECT(f, "GET", "/db/query?q=SELECT%201&freshness_strict", NULL, 400,
           "freshness_strict requires freshness\n");
}

static void test_errors_and_routing(void **state)
{
    fixture *f = *state;
    openStore(f);
    EXPECT(f, "POST", "/db/execute", "not json", 400, "invalid request\n");
    EXPECT(f, "POST", "/db/execute", "[1,", 400, "invalid JSON body\n");
    EXPECT(f, "POST", "/db/execute", "[]", 400, "no statements\n");
    EXPECT(f, "GET", "/db/execute", NULL, 405, "");
    EXPECT(f, "PUT", "/db/query", NULL, 405, "");
    EXPECT(f, "GET", "/nope", NULL, 404, "");
    EXPECT(f, "OPTIONS", "/db/execute", NULL, 200, "");
    EXPECT(f, "POST", "/join", "{\"id\":\"2\"}", 400, "missing \"addr\"\n");
    EXPECT(f, "POST", "/join", "{\"id\":\"2\",\"addr\":\"127.0.0.1:9\"}", 200, "");
    EXPECT(f, "DELETE", "/remove", "{\"id\":\"1\",\"x\":1}", 400, "");
    EXPECT(f, "DELETE", "/remove", "{\"id\":\"9\"}", 500, "node not found in cluster\n");
    EXPECT(f, "DELETE", "/remove", "{\"id\":\"1\"}", 200, "");
    EXPECT(f, "GET", "/readyz", NULL, 200, "[+]node ok\n[+]leader ok\n[+]store ok\n[+]db ok");
    resp r = call(f, "GET", "/nodes?ver=2", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "{\"nodes\":[{\"id\":\"1\",\"api_addr\":\"http://127.0.0.1:"));
    assert_non_null(strstr(r.body.data, "\"voter\":true,\"reachable\":true,\"leader\":true"));
    buf_free(&r.body);
    r = call(f, "GET", "/status", NULL, NULL);
    json_t *st = json_loads(r.body.data, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(st, "store"), "node_id")), "1");
    assert_non_null(json_object_get(st, "build"));
    json_decref(st);
    buf_free(&r.body);
}

/* /join and /notify are open while auth is off: hostile bodies get a 400
 * with a reason, and never reach the store. */
static void test_join_notify_validation(void **state)
{
    fixture *f = *state;
    openStore(f);
    static const struct {
        const char *body, *why;
    } bad[] = {
        {"", "invalid JSON body\n"},
        {"{", "invalid JSON body\n"},
        {"[\"2\",\"127.0.0.1:9\"]", "body must be a JSON object\n"},
        {"null", "invalid JSON body\n"},
        {"\"x\"", "invalid JSON body\n"},
        {"{\"id\":\"2\",\"addr\":\"127.0.0.1:9\"} trailing", "invalid JSON body\n"},
        {"{\"id\":\"2\",\"id\":\"3\",\"addr\":\"127.0.0.1:9\"}", "invalid JSON body\n"},
        {"{\"addr\":\"127.0.0.1:9\"}", "missing \"id\"\n"},
        {"{\"id\":2,\"addr\":\"127.0.0.1:9\"}", "\"id\" must be a string\n"},
        {"{\"id\":{\"a\":{\"b\":1}},\"addr\":\"127.0.0.1:9\"}", "\"id\" must be a string\n"},
        {"{\"id\":\"2\",\"addr\":[\"127.0.0.1:9\"]}", "\"addr\" must be a string\n"},
        {"{\"id\":\"\",\"addr\":\"127.0.0.1:9\"}", "\"id\" must be 1 to 255 bytes long\n"},
        {"{\"id\":\"2\\u0000x\",\"addr\":\"127.0.0.1:9\"}", "invalid JSON body\n"},
        {"{\"id\":\"2\\nx\",\"addr\":\"127.0.0.1:9\"}", "\"id\" must not contain control characters\n"},
        {"{\"id\":\"2\\u007f\",\"addr\":\"127.0.0.1:9\"}", "\"id\" must not contain control characters\n"},
        {"{\"id\":\"2\",\"addr\":\"127.0.0.1:9\\u001b\"}", "\"addr\" must not contain control characters\n"},
        {"{\"id\":\"2\",\"addr\":\"127.0.0.1\"}", "\"addr\" must be host:port with a port in 1-65535\n"},
        {"{\"id\":\"2\",\"addr\":\"127.0.0.1:0\"}", "\"addr\" must be host:port with a port in 1-65535\n"},
        {"{\"id\":\"2\",\"addr\":\"127.0.0.1:65536\"}", "\"addr\" must be host:port with a port in 1-65535\n"},
        {"{\"id\":\"2\",\"addr\":\"127.0.0.1:-1\"}", "\"addr\" must be host:port with a port in 1-65535\n"},
        {"{\"id\":\"2\",\"addr\":\"127.0.0.1:4x\"}", "\"addr\" must be host:port with a port in 1-65535\n"},
        {"{\"id\":\"2\",\"addr\":\":4002\"}", "\"addr\" must be host:port with a port in 1-65535\n"},
        {"{\"id\":\"2\",\"addr\":\"a b:4002\"}", "\"addr\" must be host:port with a port in 1-65535\n"},
        {"{\"id\":\"2\",\"addr\":\"::1:4002\"}", "\"addr\" must be host:port with a port in 1-65535\n"},
        {"{\"id\":\"2\",\"addr\":\"127.0.0.1:9\",\"api_addr\":\"127.0.0.1:8\"}",
         "\"api_addr\" must be http://host:port or https://host:port\n"},
        {"{\"id\":\"2\",\"addr\":\"127.0.0.1:9\",\"api_addr\":\"ftp://127.0.0.1:8\"}",
         "\"api_addr\" must be http://host:port or https://host:port\n"},
        {"{\"id\":\"2\",\"addr\":\"127.0.0.1:9\",\"api_addr\":\"http://127.0.0.1:8/x\"}",
         "\"api_addr\" must be http://host:port or https://host:port\n"},
        {"{\"id\":\"2\",\"addr\":\"127.0.0.1:9\",\"api_addr\":7}", "\"api_addr\" must be a string\n"},
        {"{\"id\":\"2\",\"addr\":\"127.0.0.1:9\",\"voter\":\"yes\"}", "\"voter\" must be a boolean\n"},
        {"{\"id\":\"2\",\"addr\":\"127.0.0.1:9\",\"voter\":1}", "\"voter\" must be a boolean\n"},
        {"{\"id\":\"2\",\"addr\":\"127.0.0.1:9\",\"extra\":{\"x\":[1]}}", "unknown field in body\n"},
    };
    for (int path = 0; path < 2; path++) {
        const char *url = path ? "/notify" : "/join";
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            resp r = call(f, "POST", url, bad[i].body, NULL);
            if (r.status != 400 || strcmp(r.body.data, bad[i].why) != 0)
                fail_msg("%s %s: %ld %s, want 400 %s", url, bad[i].body, r.status, r.body.data, bad[i].why);
            buf_free(&r.body);
        }
        /* 256 bytes is one too many; 255 is fine. */
        char body[1024], big[300];
        memset(big, 'x', 256);
        big[256] = '\0';
        snprintf(body, sizeof body, "{\"id\":\"%s\",\"addr\":\"127.0.0.1:9\"}", big);
        EXPECT(f, "POST", url, body, 400, "\"id\" must be 1 to 255 bytes long\n");
        snprintf(body, sizeof body, "{\"id\":\"2\",\"addr\":\"%s:9\"}", big);
        EXPECT(f, "POST", url, body, 400, "\"addr\" must be 1 to 255 bytes long\n");
        big[255] = '\0';
        snprintf(body, sizeof body, "{\"id\":\"%s\",\"addr\":\"127.0.0.1:9\"}", big);
        EXPECT(f, "POST", url, body, 200, "");
    }
    /* "reset" (our joiner's flag) is a /join field only. */
    EXPECT(f, "POST", "/notify", "{\"id\":\"2\",\"addr\":\"127.0.0.1:9\",\"reset\":true}", 400,
           "unknown field in body\n");
    EXPECT(f, "POST", "/join", "{\"id\":\"2\",\"addr\":\"127.0.0.1:9\",\"reset\":1}", 400,
           "\"reset\" must be a boolean\n");
    assert_int_equal(fake_store_joins(f->st), 1); /* only the 255-byte id */
    /* What our nodes send, and the forms rqlite's clients use. */
    EXPECT(f, "POST", "/join",
           "{\"id\":\"2\",\"addr\":\"localhost:4004\",\"voter\":false,\"api_addr\":\"http://localhost:4003\","
           "\"reset\":true}", 200, "");
    EXPECT(f, "POST", "/join", "{\"id\":\"n\u00e9\",\"addr\":\"[::1]:4004\",\"voter\":true}", 200, "");
    EXPECT(f, "POST", "/join", "{\"id\":\"3\",\"addr\":\"node-3.example_x.org:65535\"}", 200, "");
    EXPECT(f, "POST", "/notify", "{\"id\":\"3\",\"addr\":\"10.0.0.3:4002\",\"api_addr\":\"https://h:1\"}", 200,
           "");
    assert_int_equal(fake_store_joins(f->st), 4);
    store_node *known = NULL;
    int n = http_server_notified(f->h, &known);
    assert_int_equal(n, 2);
    assert_string_equal(known[1].addr, "10.0.0.3:4002");
    free(known);
    /* The image transfer is not an HTTP endpoint. */
    EXPECT(f, "GET", "/_rq/image", NULL, 404, "");
}

static void test_follower(void **state)
{
    fixture *f = *state;
    openStore(f);
    /* No leader known: 503 with rqlite's message; level=none still reads. */
    fake_store_set_leader(f->st, false, false, NULL);
    EXPECT(f, "POST", "/db/execute", "[\"SELECT 1\"]", 503, "leader not found\n");
    EXPECT(f, "GET", "/db/query?q=SELECT%201", NULL, 503, "leader not found\n");
    EXPECT(f, "GET", "/db/query?q=SELECT%201&level=none", NULL, 200,
           "{\"results\":[{\"columns\":[\"1\"],\"types\":[\"integer\"],\"values\":[[1]]}]}");
    /* A known leader: ?redirect answers 301 to it, joins are redirected. */
    fake_store_set_leader(f->st, false, true, "http://127.0.0.1:1");
    resp r = call(f, "POST", "/db/execute?redirect", "[\"SELECT 1\"]", NULL);
    assert_int_equal(r.status, 301);
    assert_string_equal(r.location, "http://127.0.0.1:1/db/execute?redirect");
    buf_free(&r.body);
    r = call(f, "POST", "/join", "{\"id\":\"2\",\"addr\":\"127.0.0.1:9\"}", NULL);
    assert_int_equal(r.status, 301);
    assert_string_equal(r.location, "http://127.0.0.1:1/join");
    buf_free(&r.body);
    /* Forwarding to an unreachable leader fails cleanly. */
    r = call(f, "POST", "/db/execute", "[\"SELECT 1\"]", NULL);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body.data, "forwarding to leader failed"));
    buf_free(&r.body);
}

/* The route table as rqlite has it: every endpoint's path, match, methods
 * and permissions (rqlite's, which auth checks). */
static const struct {
    const char *path;
    route_match match;
    unsigned methods, perms;
    bool any;
} want_routes[] = {
    {"/db/execute", ROUTE_PREFIX, ROUTE_POST, AUTH_PERM_EXECUTE, false},
    {"/db/query", ROUTE_PREFIX, ROUTE_GET | ROUTE_POST, AUTH_PERM_QUERY, false},
    {"/db/request", ROUTE_PREFIX, ROUTE_GET | ROUTE_POST, AUTH_PERM_EXECUTE | AUTH_PERM_QUERY, false},
    {"/db/backup", ROUTE_PREFIX, ROUTE_GET, AUTH_PERM_BACKUP, false},
    {"/db/load", ROUTE_PREFIX, ROUTE_POST, AUTH_PERM_LOAD, false},
    {"/db/sql", ROUTE_PREFIX, ROUTE_GET | ROUTE_POST, AUTH_PERM_QUERY, false},
    {"/boot", ROUTE_EXACT, ROUTE_POST, AUTH_PERM_LOAD, false},
    {"/status", ROUTE_PREFIX, ROUTE_GET, AUTH_PERM_STATUS, false},
    {"/nodes", ROUTE_PREFIX, ROUTE_GET, AUTH_PERM_STATUS, false},
    {"/readyz", ROUTE_PREFIX, ROUTE_GET, AUTH_PERM_READY, false},
    {"/leader", ROUTE_EXACT, ROUTE_GET | ROUTE_POST, AUTH_PERM_LEADER_OPS, false},
    {"/snapshot", ROUTE_EXACT, ROUTE_POST, AUTH_PERM_SNAPSHOT, false},
    {"/reap", ROUTE_EXACT, ROUTE_POST, AUTH_PERM_SNAPSHOT, false},
    {"/console", ROUTE_PREFIX, ROUTE_ANY, AUTH_PERM_UI, false},
    {"/metrics", ROUTE_EXACT, ROUTE_GET, AUTH_PERM_STATUS, false},
    {"/licenses", ROUTE_EXACT, ROUTE_GET, AUTH_PERM_STATUS, false},
    {"/debug/vars", ROUTE_EXACT, ROUTE_ANY, AUTH_PERM_STATUS, false},
    {"/debug/pprof", ROUTE_PREFIX, ROUTE_ANY, AUTH_PERM_STATUS, false},
    {"/join", ROUTE_EXACT, ROUTE_POST, AUTH_PERM_JOIN | AUTH_PERM_JOIN_READ_ONLY, true},
    {"/notify", ROUTE_EXACT, ROUTE_POST, AUTH_PERM_JOIN, false},
    {"/remove", ROUTE_PREFIX, ROUTE_DELETE, AUTH_PERM_REMOVE, false},
};
#define N_WANT (sizeof want_routes / sizeof *want_routes)

static const struct {
    const char *name;
    unsigned bit;
} methods[] = {
    {"GET", ROUTE_GET}, {"POST", ROUTE_POST}, {"DELETE", ROUTE_DELETE},
    {"PUT", ROUTE_OTHER}, {"PATCH", ROUTE_OTHER}, {"HEAD", ROUTE_OTHER},
};

static void test_route_table(void **state)
{
    size_t n = 0;
    const http_route *routes = router_routes(&n);
    assert_int_equal(n, N_WANT);
    for (size_t i = 0; i < n; i++) {
        const http_route *r = &routes[i];
        assert_string_equal(r->path, want_routes[i].path);
        if (r->match != want_routes[i].match || r->methods != want_routes[i].methods ||
            r->perms != want_routes[i].perms || r->any_perm != want_routes[i].any || r->handler == NULL)
            fail_msg("%s: match %d methods %#x perms %#x", r->path, r->match, r->methods, r->perms);
        /* No endpoint without a permission, and never "all" alone. */
        assert_true(r->perms != 0 && (r->perms & AUTH_PERM_ALL) == 0);
        /* Its own path, and below it when a prefix; never a longer name. */
        char url[128];
        assert_ptr_equal(router_find(r->path), r);
        snprintf(url, sizeof url, "%s/x", r->path);
        assert_ptr_equal(router_find(url), r->match == ROUTE_PREFIX ? r : NULL);
        snprintf(url, sizeof url, "%sx", r->path);
        assert_null(router_find(url));
        for (size_t m = 0; m < sizeof methods / sizeof *methods; m++)
            assert_int_equal(router_allows(r, methods[m].name), (r->methods & methods[m].bit) != 0);
    }
    const char *unknown[] = {"", "/", "/db", "/db/", "/consoles", "/debug", "/debug/", "/_rq/image", "/STATUS"};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++)
        assert_null(router_find(unknown[i]));
}

/* Over the wire, before any handler runs: a wrong method is 405 and an
 * unknown path 404, both with an empty body; OPTIONS is 200 anywhere. */
static void test_route_status_codes(void **state)
{
    fixture *f = *state;
    char path[128];
    for (size_t i = 0; i < N_WANT; i++) {
        for (int below = 0; below < 2; below++) {
            snprintf(path, sizeof path, "%s%s", want_routes[i].path, below ? "/x" : "");
            bool found = !below || want_routes[i].match == ROUTE_PREFIX;
            for (size_t m = 0; m < sizeof methods / sizeof *methods; m++) {
                if (strcmp(methods[m].name, "HEAD") == 0) /* no body to compare */
                    continue;
                if (!found)
                    EXPECT(f, methods[m].name, path, NULL, 404, "");
                else if ((want_routes[i].methods & methods[m].bit) == 0)
                    EXPECT(f, methods[m].name, path, NULL, 405, "");
            }
            EXPECT(f, "OPTIONS", path, NULL, 200, "");
        }
        snprintf(path, sizeof path, "%sx", want_routes[i].path);
        EXPECT(f, "GET", path, NULL, 404, "");
        EXPECT(f, "POST", path, NULL, 404, "");
    }
    EXPECT(f, "GET", "/", NULL, 302, ""); /* to /console/, as rqlite */
    EXPECT(f, "GET", "/nope", NULL, 404, "");
    EXPECT(f, "DELETE", "/db/", NULL, 404, "");
    EXPECT(f, "OPTIONS", "/nope", NULL, 200, "");
    /* /debug/vars takes any method, as rqlite's. */
    resp r = call(f, "PUT", "/debug/vars?key=http", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "{\n\"http\": {"));
    assert_non_null(strstr(r.body.data, "\"queued_sequence_number\":"));
    buf_free(&r.body);
}

/* ---- with -auth ---------------------------------------------------------------- */

/* The credentials file of the auth tests: "all" (all); for route i, "r<i>"
 * with exactly its permissions (for /join, join-read-only alone) and "n<i>"
 * with every other one but all; "*" with no permission (every one is some route's). */
static void buildAuthText(buf *out)
{
    buf_puts(out, "[{\"username\": \"all\", \"password\": \"all-pw\", \"perms\": [\"all\"]},\n"
                  " {\"username\": \"*\", \"perms\": []}");
    for (size_t i = 0; i < N_WANT; i++) {
        unsigned mine = want_routes[i].any ? AUTH_PERM_JOIN_READ_ONLY : want_routes[i].perms;
        for (int other = 0; other < 2; other++) {
            buf_printf(out, ",\n {\"username\": \"%c%zu\", \"password\": \"pw%zu\", \"perms\": [", other ? 'n' : 'r',
                       i, i);
            const char *sep = "";
            for (int b = 1; b < AUTH_PERM_COUNT; b++) {
                unsigned bit = 1u << b;
                if (other ? (want_routes[i].perms & bit) == 0 : (mine & bit) != 0) {
                    buf_printf(out, "%s\"%s\"", sep, auth_perm_name(bit));
                    sep = ", ";
                }
            }
            buf_puts(out, "]}");
        }
    }
    buf_puts(out, "]\n");
}

/* "Basic " + base64 of user:pass (short ASCII only). */
static void basic(char *out, size_t n, const char *user, const char *pass)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char raw[128];
    size_t len = (size_t)snprintf(raw, sizeof raw, "%s:%s", user, pass);
    size_t o = (size_t)snprintf(out, n, "Basic ");
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned char)raw[i] << 16 | (i + 1 < len ? (unsigned char)raw[i + 1] << 8 : 0) |
                     (i + 2 < len ? (unsigned char)raw[i + 2] : 0);
        out[o++] = tbl[v >> 18 & 63];
        out[o++] = tbl[v >> 12 & 63];
        out[o++] = i + 1 < len ? tbl[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
}

static const char *firstMethod(unsigned methods)
{
    return methods & ROUTE_GET ? "GET" : methods & ROUTE_POST ? "POST" : "DELETE";
}

/* A refusal: 401, empty body, the challenge. */
static void expectRefused(fixture *f, const char *method, const char *path, const char *body, const char *authz)
{
    resp r = callAuth(f, method, path, body, NULL, authz);
    if (r.status != 401 || r.body.len != 0 || strcmp(r.www_auth, "Basic realm=\"rqlite\"") != 0)
        fail_msg("%s %s as %s: %ld [%s] www-authenticate [%s]", method, path, authz ? authz : "anonymous", r.status,
                 r.body.data, r.www_auth);
    buf_free(&r.body);
}

/* Let through the router (the handler's answer, whatever it is before the
 * store opens), with the challenge all the same. */
static void expectAdmitted(fixture *f, const char *method, const char *path, const char *body, const char *authz)
{
    resp r = callAuth(f, method, path, body, NULL, authz);
    if (r.status == 401 || strcmp(r.www_auth, "Basic realm=\"rqlite\"") != 0)
        fail_msg("%s %s as %s: %ld [%s] www-authenticate [%s]", method, path, authz, r.status, r.body.data,
                 r.www_auth);
    buf_free(&r.body);
}

/* Every route against its permissions: anonymous, a wrong password, a
 * user with every other permission, the user with its own, "all". */
static void test_auth_routes(void **state)
{
    fixture *f = *state;
    char authz[256], path[128];
    for (size_t i = 0; i < N_WANT; i++) {
        const char *m = firstMethod(want_routes[i].methods);
        /* "/console" itself redirects before credentials, as rqlite's */
        bool console = strcmp(want_routes[i].path, "/console") == 0;
        const char *p = console ? "/console/" : want_routes[i].path;
        char user[16], pass[16];
        snprintf(pass, sizeof pass, "pw%zu", i);
        expectRefused(f, m, p, NULL, NULL);
        snprintf(user, sizeof user, "n%zu", i);
        basic(authz, sizeof authz, user, pass);
        expectRefused(f, m, p, NULL, authz);
        snprintf(user, sizeof user, "r%zu", i);
        basic(authz, sizeof authz, user, "wrong");
        expectRefused(f, m, p, NULL, authz);
        basic(authz, sizeof authz, user, pass);
        expectAdmitted(f, m, p, NULL, authz);
        if (want_routes[i].match == ROUTE_PREFIX) { /* below it too */
            snprintf(path, sizeof path, "%s/x", p);
            expectRefused(f, m, path, NULL, NULL);
            expectAdmitted(f, m, path, NULL, authz);
        }
        basic(authz, sizeof authz, "all", "all-pw");
        expectAdmitted(f, m, p, NULL, authz);
        /* rqlite checks before the method: a wrong one is 401 without the
         * permission, 405 with it. */
        expectRefused(f, "PATCH", p, NULL, NULL);
        resp r = callAuth(f, "PATCH", p, NULL, NULL, authz);
        /* (the console takes GET and HEAD only, as rqlite's) */
        assert_int_equal(r.status, want_routes[i].methods & ROUTE_OTHER && !console ? 200 : 405);
        assert_string_equal(r.www_auth, "Basic realm=\"rqlite\"");
        buf_free(&r.body);
    }
}

/* The challenge and rqlite's CORS headers on every answer, refused or not;
 * OPTIONS and 404 need no credentials. */
static void test_auth_headers(void **state)
{
    fixture *f = *state;
    char authz[256];
    basic(authz, sizeof authz, "all", "all-pw");
    const struct {
        const char *method, *path, *authz;
        long status;
    } cases[] = {
        {"OPTIONS", "/db/execute", NULL, 200}, {"OPTIONS", "/nope", NULL, 200}, {"GET", "/nope", NULL, 404},
        {"GET", "/status", NULL, 401},         {"GET", "/status", authz, 200},  {"GET", "/readyz", authz, 503},
        {"POST", "/db/execute", authz, 200},   {"GET", "/", NULL, 302},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        resp r = callAuth(f, cases[i].method, cases[i].path, NULL, NULL, cases[i].authz);
        if (r.status != cases[i].status)
            fail_msg("%s %s: %ld", cases[i].method, cases[i].path, r.status);
        assert_string_equal(r.www_auth, "Basic realm=\"rqlite\"");
        assert_string_equal(r.allow_headers, "Content-Type, Authorization");
        assert_string_equal(r.allow_creds, "true");
        buf_free(&r.body);
    }
    /* /status says so. */
    resp r = callAuth(f, "GET", "/status?key=http", NULL, NULL, authz);
    assert_non_null(strstr(r.body.data, "\"auth\":\"enabled\""));
    buf_free(&r.body);
}

/* Credentials that are not well-formed are no credentials: refused. */
static void test_auth_bad_credentials(void **state)
{
    fixture *f = *state;
    char big[12000];
    memcpy(big, "Basic ", 6);
    memset(big + 6, 'A', sizeof big - 7);
    big[sizeof big - 1] = '\0';
    const char *bad[] = {
        "Basic YWxsOmFsbC1wdw",    /* all:all-pw without its padding */
        "Basic YWxsOmFsbC1wdw==x", "Basic !!!!", "Basic YWxs", /* "all": no colon */
        "Bearer YWxsOmFsbC1wdw==", "Basic", "Basic ", "basic", "Digest username=\"all\"",
        "Basic YWxsOmFsbC1wdw== extra", big,
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expectRefused(f, "GET", "/status", NULL, bad[i]);
    /* The right ones, in any case of "Basic". */
    expectAdmitted(f, "GET", "/status", NULL, "Basic YWxsOmFsbC1wdw==");
    expectAdmitted(f, "GET", "/status", NULL, "bAsIc YWxsOmFsbC1wdw==");
}

/* /join: join-read-only admits a non-voter, not a voter. */
static void test_auth_join(void **state)
{
    fixture *f = *state;
    char authz[256];
    size_t j = 0;
    while (strcmp(want_routes[j].path, "/join") != 0)
        j++;
    char user[16], pass[16];
    snprintf(user, sizeof user, "r%zu", j);
    snprintf(pass, sizeof pass, "pw%zu", j);
    basic(authz, sizeof authz, user, pass);
    const char *voter = "{\"id\":\"9\",\"addr\":\"127.0.0.1:9\",\"voter\":true}";
    const char *implied = "{\"id\":\"9\",\"addr\":\"127.0.0.1:9\"}";
    const char *nonvoter = "{\"id\":\"9\",\"addr\":\"127.0.0.1:9\",\"voter\":false}";
    expectRefused(f, "POST", "/join", voter, authz);
    expectRefused(f, "POST", "/join", implied, authz);
    resp r = callAuth(f, "POST", "/join", nonvoter, NULL, authz);
    assert_int_equal(r.status, 503); /* past the checks: no store yet */
    assert_string_equal(r.body.data, "store not open\n");
    buf_free(&r.body);
    basic(authz, sizeof authz, "all", "all-pw");
    r = callAuth(f, "POST", "/join", voter, NULL, authz);
    assert_int_equal(r.status, 503);
    buf_free(&r.body);
    expectRefused(f, "POST", "/join", nonvoter, NULL);
}

static int setupAuth(void **state)
{
    static buf text = BUF_INIT;
    if (text.len == 0)
        buildAuthText(&text);
    auth_text = text.data;
    int rc = setup(state);
    auth_text = NULL;
    return rc;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_before_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_and_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_notify_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follower, setup, teardown),
        cmocka_unit_test(test_route_table),
        cmocka_unit_test_setup_teardown(test_route_status_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_routes, setupAuth, teardown),
        cmocka_unit_test_setup_teardown(test_auth_headers, setupAuth, teardown),
        cmocka_unit_test_setup_teardown(test_auth_bad_credentials, setupAuth, teardown),
        cmocka_unit_test_setup_teardown(test_auth_join, setupAuth, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
