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
    char *argv[] = {"rqlited", "-node-id", "1", "-http-addr", http, "-raft-addr", raft, f->dir};
    int code;
    assert_int_equal(config_parse(&f->cfg, 8, argv, &code), 0);
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
} resp;

static size_t onBody(char *p, size_t s, size_t n, void *ud)
{
    buf_append(ud, p, s * n);
    return s * n;
}

static size_t onHeader(char *p, size_t s, size_t n, void *ud)
{
    resp *r = ud;
    size_t len = s * n;
    if (strncasecmp(p, "Location: ", 10) == 0)
        snprintf(r->location, sizeof r->location, "%.*s", (int)(len - 12), p + 10);
    return len;
}

static resp call(fixture *f, const char *method, const char *path, const char *body, const char *ctype)
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
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
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
 * and permissions (the names auth will check, issue 15). */
static const struct {
    const char *path;
    route_match match;
    unsigned methods, perms;
} want_routes[] = {
    {"/db/execute", ROUTE_PREFIX, ROUTE_POST, HTTP_PERM_EXECUTE},
    {"/db/query", ROUTE_PREFIX, ROUTE_GET | ROUTE_POST, HTTP_PERM_QUERY},
    {"/db/request", ROUTE_PREFIX, ROUTE_GET | ROUTE_POST, HTTP_PERM_EXECUTE | HTTP_PERM_QUERY},
    {"/db/backup", ROUTE_PREFIX, ROUTE_GET, HTTP_PERM_BACKUP},
    {"/db/load", ROUTE_PREFIX, ROUTE_POST, HTTP_PERM_LOAD},
    {"/boot", ROUTE_EXACT, ROUTE_POST, HTTP_PERM_LOAD},
    {"/status", ROUTE_PREFIX, ROUTE_GET, HTTP_PERM_STATUS},
    {"/nodes", ROUTE_PREFIX, ROUTE_GET, HTTP_PERM_STATUS},
    {"/readyz", ROUTE_PREFIX, ROUTE_GET, HTTP_PERM_READY},
    {"/leader", ROUTE_EXACT, ROUTE_GET | ROUTE_POST, HTTP_PERM_LEADER_OPS},
    {"/snapshot", ROUTE_EXACT, ROUTE_POST, HTTP_PERM_SNAPSHOT},
    {"/debug/vars", ROUTE_EXACT, ROUTE_ANY, HTTP_PERM_STATUS},
    {"/join", ROUTE_EXACT, ROUTE_POST, HTTP_PERM_JOIN},
    {"/notify", ROUTE_EXACT, ROUTE_POST, HTTP_PERM_JOIN},
    {"/remove", ROUTE_PREFIX, ROUTE_DELETE, HTTP_PERM_REMOVE},
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
            r->perms != want_routes[i].perms || r->handler == NULL)
            fail_msg("%s: match %d methods %#x perms %#x", r->path, r->match, r->methods, r->perms);
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
    const char *unknown[] = {"", "/", "/db", "/db/", "/db/sql", "/console", "/debug/pprof", "/_rq/image", "/STATUS"};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++)
        assert_null(router_find(unknown[i]));
    /* rqlite's permission names, one a bit. */
    const char *names[HTTP_PERM_COUNT] = {"all",    "execute",        "query",  "load",     "backup",
                                          "status", "ready",          "join",   "join-read-only",
                                          "remove", "snapshot",       "leader-ops", "ui"};
    for (int i = 0; i < HTTP_PERM_COUNT; i++)
        assert_string_equal(router_perm_name(1u << i), names[i]);
    assert_int_equal(HTTP_PERM_UI, 1u << (HTTP_PERM_COUNT - 1));
    assert_null(router_perm_name(0));
    assert_null(router_perm_name(HTTP_PERM_EXECUTE | HTTP_PERM_QUERY));
    assert_null(router_perm_name(1u << HTTP_PERM_COUNT));
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
    EXPECT(f, "GET", "/", NULL, 404, "");
    EXPECT(f, "DELETE", "/db/", NULL, 404, "");
    EXPECT(f, "OPTIONS", "/nope", NULL, 200, "");
    /* /debug/vars takes any method, as rqlite's. */
    resp r = call(f, "PUT", "/debug/vars?key=http", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "\"http\": {\"queued_sequence_number\":"));
    buf_free(&r.body);
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
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
