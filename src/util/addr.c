/* addr.c: see addr.h. */
#include "util/addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/os.h"

int addr_split(const char *addr, char *host, size_t hn, char *port, size_t pn)
{
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (colon == NULL || colon[1] == '\0')
        return -1;
    size_t n = (size_t)(colon - addr);
    const char *h = addr;
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n >= hn || strlen(colon + 1) >= pn)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    snprintf(port, pn, "%s", colon + 1);
    return 0;
}

int addr_port(const char *addr)
{
    char host[256], port[16];
    if (addr_split(addr, host, sizeof host, port, sizeof port) != 0 || strlen(port) > 5)
        return -1;
    for (const char *p = port; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    long v = strtol(port, NULL, 10);
    return v <= 65535 ? (int)v : -1;
}

int addr_resolve(const char *addr, bool passive, struct sockaddr_storage *ss, socklen_t *len, char **err)
{
    char host[256], port[16];
    if (addr_split(addr, host, sizeof host, port, sizeof port) != 0) {
        if (err)
            *err = rq_sprintf("invalid address %s", addr);
        return -1;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    hints.ai_family = AF_INET; /* like Go: "localhost" is 127.0.0.1 */
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        hints.ai_family = AF_UNSPEC;
        rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    }
    if (rc != 0) {
        if (err)
            *err = rq_sprintf("cannot resolve %s: %s", addr, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    if (len)
        *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

void addr_numeric_ipv4(const char *addr, char *out, size_t n)
{
    snprintf(out, n, "%s", addr);
    char host[256], port[16];
    struct in_addr probe;
    if (addr_split(addr, host, sizeof host, port, sizeof port) != 0 || host[0] == '\0' ||
        inet_pton(AF_INET, host, &probe) == 1)
        return;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
        return;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip, sizeof ip);
    freeaddrinfo(res);
    snprintf(out, n, "%s:%s", ip, port);
}

void addr_format(const struct sockaddr *sa, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "";
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, n, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(out, n, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(out, n, "?");
    }
}
