/*
 * rqhello: the anchor for read throughput in bench/run. A bare "hello
 * world" served by libmicrohttpd with the same daemon setup as rqlited's
 * HTTP API (thread per connection, poll), so that the table shows how much
 * of a point SELECT's cost is the HTTP library itself.
 *
 *   rqhello PORT      (runs until killed)
 */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char body[] = "{\"results\":[{\"columns\":[\"v\"],\"types\":[\"text\"],\"values\":[[\"hello\"]]}]}";

static enum MHD_Result onRequest(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **state)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    static int marker;
    /* Like rqlited: the first call only sets up, the answer comes once the
     * request (and any body) has been read. */
    if (*state == NULL) {
        *state = &marker;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: rqhello PORT\n");
        return 2;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG;
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)atoi(argv[1]), NULL, NULL, onRequest, NULL,
                                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "rqhello: cannot listen on port %s\n", argv[1]);
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
