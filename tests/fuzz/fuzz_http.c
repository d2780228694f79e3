/* libFuzzer: whole HTTP requests (request line, headers, query parameters,
 * bodies) sent to the real HTTP layer over loopback, answered by a
 * single-process store (tests/unit/fake_store.c). A crash or sanitizer
 * report in any handler is a finding; every request must get an answer or
 * a closed connection, and the server must keep serving. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "http/http.h"
#include "store/store.h"

static config cfg;
static int port;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static char dir[] = "/tmp/rq-fuzz-http-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(s, (struct sockaddr *)&a, sizeof a);
    getsockname(s, (struct sockaddr *)&a, &al);
    close(s);
    port = ntohs(a.sin_port);
    char http[32], raft[32];
    snprintf(http, sizeof http, "127.0.0.1:%d", port);
    snprintf(raft, sizeof raft, "127.0.0.1:%d", port == 65535 ? 1 : port + 1);
    char *args[] = {"rqlited", "-node-id", "1", "-http-addr", http, "-raft-addr", raft, dir};
    int code;
    if (config_parse(&cfg, 8, args, &code) != 0)
        abort();
    char *err = NULL;
    http_server *h = NULL;
    store *st = NULL;
    if (http_server_start(&cfg, &h, &err) != 0 || store_open(&cfg, &st, &err) != 0) {
        fprintf(stderr, "fuzz_http: %s\n", err ? err : "?");
        abort();
    }
    http_server_set_store(h, st);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int s = -1;
    /* A server at its connection limit may refuse for a moment; one that
     * refuses for 5 s has stopped serving: that is a finding. */
    for (int tries = 0; s < 0; tries++) {
        s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&a, sizeof a) == 0)
            break;
        int e = errno;
        close(s);
        s = -1;
        if (tries == 500) {
            fprintf(stderr, "fuzz_http: the server stopped accepting connections: %s\n", strerror(e));
            abort();
        }
        usleep(10000);
    }
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(s, data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    shutdown(s, SHUT_WR);
    char buf[65536];
    struct pollfd p = {.fd = s, .events = POLLIN};
    /* Read the answer; an incomplete request may just wait: give up soon. */
    while (poll(&p, 1, 200) > 0 && read(s, buf, sizeof buf) > 0)
        ;
    close(s);
    return 0;
}
