/*
 * disco.c: the DNS lookups behind -disco-mode dns and dns-srv (see disco.h).
 */
#include "disco/disco.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/addr.h"
#include "util/os.h"

struct disco {
    char mode[16];        /* "dns" or "dns-srv" */
    char name[256];
    char service[128];    /* dns-srv */
    int port;             /* dns */
};

/* -disco-config is JSON text or the path of a file holding it (rqlite
 * tells them apart the same way: a file that exists is read). */
static json_t *loadConfig(const char *text, char **err)
{
    json_error_t jerr;
    FILE *f = *text ? fopen(text, "r") : NULL;
    json_t *j = f ? json_loadf(f, 0, &jerr) : json_loads(text, 0, &jerr);
    if (f)
        fclose(f);
    if (!json_is_object(j)) {
        *err = rq_sprintf("error reading DNS configuration: %s", j ? "expected a JSON object" : jerr.text);
        json_decref(j);
        return NULL;
    }
    return j;
}

int disco_new(const config *cfg, disco **out, char **err)
{
    *out = NULL;
    const char *mode = cfg->disco_mode ? cfg->disco_mode : "";
    if (!*mode)
        return 0;
    if (strcmp(mode, "dns") != 0 && strcmp(mode, "dns-srv") != 0) {
        *err = rq_sprintf(strcmp(mode, "consul-kv") == 0 || strcmp(mode, "etcd-kv") == 0
                              ? "-disco-mode %s is not supported by this build"
                              : "invalid disco mode %s",
                          mode);
        return -1;
    }
    json_t *j = loadConfig(cfg->disco_config ? cfg->disco_config : "", err);
    if (j == NULL)
        return -1;
    disco *d = calloc(1, sizeof *d);
    if (d == NULL) {
        json_decref(j);
        *err = strdup("out of memory");
        return -1;
    }
    snprintf(d->mode, sizeof d->mode, "%s", mode);
    const char *name = json_string_value(json_object_get(j, "name"));
    const char *service = json_string_value(json_object_get(j, "service"));
    json_t *port = json_object_get(j, "port");
    snprintf(d->name, sizeof d->name, "%s", name ? name : "");
    snprintf(d->service, sizeof d->service, "%s", service ? service : "rqlite-raft");
    char host[256], p[32];
    d->port = json_is_integer(port) ? (int)json_integer_value(port)
              : addr_split(cfg->raft_adv_addr, host, sizeof host, p, sizeof p) == 0 ? atoi(p)
                                                                                   : 4002;
    json_decref(j);
    if (!*d->name || d->port <= 0 || d->port > 65535) {
        *err = rq_sprintf("error reading DNS configuration: %s", *d->name ? "invalid port" : "\"name\" is required");
        free(d);
        return -1;
    }
    *out = d;
    return 0;
}

void disco_free(disco *d)
{
    free(d);
}

/* RQLITE_DISCO_DNS_HOSTS: the answer, comma-separated, blanks skipped. */
static int fromEnvironment(const char *hosts, char **targets)
{
    char *copy = strdup(hosts), *save = NULL;
    int n = 0;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && n < DISCO_MAX_TARGETS;
         t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (*t)
            targets[n++] = strdup(t);
    }
    free(copy);
    return n;
}

/* dns: every distinct address of the name, with the port. */
static int lookupHosts(disco *d, char **targets, char **err)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(d->name, NULL, &hints, &res);
    if (rc != 0) {
        *err = rq_sprintf("lookup %s: %s", d->name, gai_strerror(rc));
        return 0;
    }
    int n = 0;
    for (struct addrinfo *a = res; a && n < DISCO_MAX_TARGETS; a = a->ai_next) {
        char ip[INET6_ADDRSTRLEN] = "";
        const void *src = a->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                                                  : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        if (inet_ntop(a->ai_family, src, ip, sizeof ip) == NULL)
            continue;
        char *t = a->ai_family == AF_INET6 ? rq_sprintf("[%s]:%d", ip, d->port) : rq_sprintf("%s:%d", ip, d->port);
        bool dup = false;
        for (int i = 0; i < n && !dup; i++)
            dup = strcmp(targets[i], t) == 0;
        if (dup)
            free(t);
        else
            targets[n++] = t;
    }
    freeaddrinfo(res);
    return n;
}

/* dns-srv: the SRV records of _service._tcp.name, as host:port. */
static int lookupSrv(disco *d, char **targets, char **err)
{
    char q[512];
    snprintf(q, sizeof q, "_%s._tcp.%s", d->service, d->name);
    unsigned char answer[8192];
    struct __res_state rs;
    memset(&rs, 0, sizeof rs);
    if (res_ninit(&rs) != 0) {
        *err = strdup("cannot initialise the resolver");
        return 0;
    }
    int len = res_nquery(&rs, q, ns_c_in, ns_t_srv, answer, sizeof answer);
    int n = 0;
    ns_msg msg;
    if (len < 0 || ns_initparse(answer, len, &msg) != 0) {
        *err = rq_sprintf("lookup %s: no SRV records", q);
    } else {
        for (int i = 0; i < ns_msg_count(msg, ns_s_an) && n < DISCO_MAX_TARGETS; i++) {
            ns_rr rr;
            char host[NS_MAXDNAME];
            if (ns_parserr(&msg, ns_s_an, i, &rr) != 0 || ns_rr_type(rr) != ns_t_srv || ns_rr_rdlen(rr) < 7)
                continue;
            const unsigned char *rd = ns_rr_rdata(rr);
            int port = (rd[4] << 8) | rd[5];
            if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 6, host, sizeof host) < 0)
                continue;
            targets[n++] = rq_sprintf("%s:%d", host, port);
        }
    }
    res_nclose(&rs);
    return n;
}

int disco_lookup(disco *d, char **targets, char **err)
{
    *err = NULL;
    const char *env = getenv("RQLITE_DISCO_DNS_HOSTS");
    if (strcmp(d->mode, "dns") == 0 && env && *env)
        return fromEnvironment(env, targets);
    return strcmp(d->mode, "dns") == 0 ? lookupHosts(d, targets, err) : lookupSrv(d, targets, err);
}

json_t *disco_status(const disco *d)
{
    json_t *c = json_pack("{s:s}", "name", d->name);
    if (strcmp(d->mode, "dns") == 0)
        json_object_set_new(c, "port", json_integer(d->port));
    else
        json_object_set_new(c, "service", json_string(d->service));
    return json_pack("{s:s,s:o}", "mode", d->mode, "config", c);
}
