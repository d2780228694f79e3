/*
 * auth: users and permissions, from rqlite's credentials file (-auth).
 *
 * The file is a JSON array of {"username", "password", "perms"} objects; a
 * later entry for a username replaces an earlier one. The username "*"
 * stands for every request, anonymous ones included, and needs no
 * password. A permission is granted when "*" has it (or "all"), or when the
 * request's user authenticates and has it (or "all"). Passwords are plain
 * text, compared in constant time; a bcrypt hash ($2a$, $2b$, $2y$) stored
 * instead is checked with crypt_r, and the hash string itself is never
 * accepted as the password (rqlite before 8.12 accepted it: the flaw that
 * ended its bcrypt support). Unknown permission names are ignored, as in
 * rqlite, with a warning in the log.
 *
 * The file is read again on auth_reload() (SIGHUP) and when its mtime,
 * size or inode change (looked at by auth_allowed(), at most once a
 * second). A reload that fails keeps the credentials loaded before and
 * logs why. Every function is thread-safe.
 */
#ifndef RQ_AUTH_AUTH_H
#define RQ_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>

/* rqlite's permissions, as bits; auth_perm_name() gives their names.
 * "join-read-replica" is another name for join-read-only. */
enum {
    AUTH_PERM_ALL = 1u << 0, /* every other one */
    AUTH_PERM_EXECUTE = 1u << 1,
    AUTH_PERM_QUERY = 1u << 2,
    AUTH_PERM_LOAD = 1u << 3,
    AUTH_PERM_BACKUP = 1u << 4,
    AUTH_PERM_STATUS = 1u << 5,
    AUTH_PERM_READY = 1u << 6,
    AUTH_PERM_JOIN = 1u << 7,
    AUTH_PERM_JOIN_READ_ONLY = 1u << 8,
    AUTH_PERM_REMOVE = 1u << 9,
    AUTH_PERM_SNAPSHOT = 1u << 10,
    AUTH_PERM_LEADER_OPS = 1u << 11,
    AUTH_PERM_UI = 1u << 12,
};
#define AUTH_PERM_COUNT 13

/* rqlite's name of one AUTH_PERM_* bit ("leader-ops"), NULL if perm is not
 * exactly one of them. */
const char *auth_perm_name(unsigned perm);
/* The bit of a permission name, 0 if it is none of rqlite's. */
unsigned auth_perm_bit(const char *name);

typedef struct auth auth;

/* Load the credentials file at path. Returns 0 with *out (free it with
 * auth_close), or -1 with *err (malloc'd) saying what is wrong with the
 * file: unreadable, not JSON, or not an array of credentials. */
int auth_open(const char *path, auth **out, char **err);
void auth_close(auth *a);

/* Read the file again now. Returns 0, or -1 with *err (malloc'd; err may be
 * NULL) and the credentials loaded before still in force. Logs either way. */
int auth_reload(auth *a, char **err);

/* May a request with these credentials (user NULL: anonymous) do every
 * one of perms (AUTH_PERM_* bits)? Looks for a changed file first. */
bool auth_allowed(auth *a, const char *user, const char *pass, unsigned perms);

/* The credentials of an HTTP Authorization header value (len bytes, which
 * may hold anything), as Go's Request.BasicAuth reads them: "Basic "
 * (any case), then standard padded base64 of "user:password" split at
 * the first colon. Returns 0 with *user and *pass (malloc'd, NUL-free), or
 * -1 when the value is not that (the request is then anonymous). */
int auth_parse_basic(const char *value, size_t len, char **user, char **pass);

/* "Basic <base64 of user:password>" with user's password from the file,
 * for this node's own requests (-join-as); malloc'd. NULL with *why
 * (malloc'd; why may be NULL) when user is not in the file or its password
 * is a bcrypt hash, which cannot be sent. */
char *auth_basic_header(auth *a, const char *user, char **why);

/* Wipe and free a password or header that held one (NULL is allowed). */
void auth_free_secret(char *s);

#endif
