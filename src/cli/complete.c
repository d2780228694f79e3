/* complete.c: see complete.h. */
#include "cli/complete.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The keywords worth a Tab: SQLite's statements, clauses and operators,
 * and the type names of column definitions. */
static const char *const keywords[] = {
    "ABORT", "ACTION", "ADD", "AFTER", "ALL", "ALTER", "ALWAYS", "ANALYZE", "AND", "AS", "ASC", "ATTACH",
    "AUTOINCREMENT", "BEFORE", "BEGIN", "BETWEEN", "BLOB", "BY", "CASCADE", "CASE", "CAST", "CHECK", "COLLATE",
    "COLUMN", "COMMIT", "CONFLICT", "CONSTRAINT", "CREATE", "CROSS", "CURRENT_DATE", "CURRENT_TIME",
    "CURRENT_TIMESTAMP", "DEFAULT", "DEFERRABLE", "DEFERRED", "DELETE", "DESC", "DETACH", "DISTINCT", "DO", "DROP",
    "EACH", "ELSE", "END", "ESCAPE", "EXCEPT", "EXCLUSIVE", "EXISTS", "EXPLAIN", "FAIL", "FILTER", "FOLLOWING", "FOR",
    "FOREIGN", "FROM", "FULL", "GENERATED", "GLOB", "GROUP", "HAVING", "IF", "IGNORE", "IMMEDIATE", "IN", "INDEX",
    "INDEXED", "INITIALLY", "INNER", "INSERT", "INSTEAD", "INTEGER", "INTERSECT", "INTO", "IS", "ISNULL", "JOIN",
    "KEY", "LEFT", "LIKE", "LIMIT", "MATCH", "NATURAL", "NO", "NOT", "NOTHING", "NOTNULL", "NULL", "NUMERIC", "OF",
    "OFFSET", "ON", "OR", "ORDER", "OUTER", "OVER", "PARTITION", "PLAN", "PRAGMA", "PRECEDING", "PRIMARY", "QUERY",
    "RAISE", "RANGE", "REAL", "RECURSIVE", "REFERENCES", "REGEXP", "REINDEX", "RELEASE", "RENAME", "REPLACE",
    "RESTRICT", "RETURNING", "RIGHT", "ROLLBACK", "ROW", "ROWID", "ROWS", "SAVEPOINT", "SELECT", "SET", "STRICT",
    "TABLE", "TEMP", "TEMPORARY", "TEXT", "THEN", "TO", "TRANSACTION", "TRIGGER", "UNBOUNDED", "UNION", "UNIQUE",
    "UPDATE", "USING", "VACUUM", "VALUES", "VIEW", "VIRTUAL", "WHEN", "WHERE", "WINDOW", "WITH", "WITHOUT",
};

typedef struct words {
    char **v;
    size_t n, cap;
} words;

static void add(words *w, const char *s, size_t len)
{
    if (w->n + 2 > w->cap) {
        w->cap = w->cap ? 2 * w->cap : 32;
        w->v = realloc(w->v, w->cap * sizeof *w->v);
    }
    w->v[w->n++] = strndup(s, len);
}

static bool prefixed(const char *s, size_t len, const char *text)
{
    size_t n = strlen(text);
    return n <= len && strncasecmp(s, text, n) == 0;
}

/* What was typed decides the case of the words offered for it: upper when
 * it has capitals and no small letters, or (SQL's habit) nothing typed. */
static bool wantUpper(const char *text, bool dflt)
{
    bool upper = false, lower = false;
    for (const char *p = text; *p; p++) {
        upper |= isupper((unsigned char)*p) != 0;
        lower |= islower((unsigned char)*p) != 0;
    }
    return upper || lower ? upper && !lower : dflt;
}

/* s (len bytes) in the case text asks for, when it matches. */
static void addCased(words *w, const char *s, size_t len, const char *text, bool dflt)
{
    if (!prefixed(s, len, text))
        return;
    bool up = wantUpper(text, dflt);
    add(w, s, len);
    for (char *p = w->v[w->n - 1]; *p; p++)
        *p = (char)(up ? toupper((unsigned char)*p) : tolower((unsigned char)*p));
}

static void addTables(words *w, const complete_src *src, const char *text)
{
    size_t n = 0;
    const char *const *t = src->tables ? src->tables(src->ud, &n) : NULL;
    for (size_t i = 0; i < n; i++)
        if (prefixed(t[i], strlen(t[i]), text))
            add(w, t[i], strlen(t[i]));
}

/* The argument at index arg (0: the first) of the command with usage:
 * its choices, files, or tables, as the usage spells them. */
static void addArgument(words *w, const complete_src *src, const char *usage, size_t arg, const char *text,
                        bool *files)
{
    const char *p = usage + strcspn(usage, " ");
    for (size_t i = 0;; i++) {
        p += strspn(p, " ");
        if (*p == '\0')
            return;
        size_t len = strcspn(p, " ");
        if (i < arg) {
            p += len;
            continue;
        }
        if (len == 4 && strncmp(p, "FILE", 4) == 0) {
            *files = true;
        } else if (strncmp(p, "[TABLE", 6) == 0) {
            addTables(w, src, text);
        } else if (*p == '[' && islower((unsigned char)p[1])) {
            /* "[a|b|c]" */
            for (const char *c = p + 1; c < p + len && *c != ']';) {
                size_t cl = strcspn(c, "|]");
                if (prefixed(c, cl, text)) /* as spelled: .mode and .consistency take no capitals */
                    add(w, c, cl);
                c += cl + (c[cl] == '|');
            }
        }
        return;
    }
}

static int cmpWord(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **complete_words(const complete_src *src, const char *line, size_t start, const char *text, bool *files)
{
    words w = {0};
    *files = false;
    const char *first = line + strspn(line, " \t");
    size_t firstlen = strcspn(first, " \t");
    bool atFirst = (size_t)(first - line) >= start;
    if (atFirst && *text == '.') {
        for (size_t i = 0; i < src->nusages; i++)
            addCased(&w, src->usages[i], strcspn(src->usages[i], " "), text, false);
    } else if (*first == '.') {
        /* which argument: the words between the command and this one */
        size_t arg = 0;
        for (const char *p = first + firstlen; p < line + start;) {
            p += strspn(p, " \t");
            p += strcspn(p, " \t");
            if (p >= line + start) /* the word being completed ("a,b": its part after the ',') */
                break;
            arg++;
        }
        for (size_t i = 0; i < src->nusages; i++) {
            size_t n = strcspn(src->usages[i], " ");
            if (n == firstlen && strncasecmp(src->usages[i], first, n) == 0)
                addArgument(&w, src, src->usages[i], arg, text, files);
        }
    } else {
        addTables(&w, src, text);
        for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
            addCased(&w, keywords[i], strlen(keywords[i]), text, true);
    }
    if (w.n == 0) {
        free(w.v);
        return NULL;
    }
    qsort(w.v, w.n, sizeof *w.v, cmpWord);
    size_t k = 0;
    for (size_t i = 0; i < w.n; i++) {
        if (k && strcmp(w.v[k - 1], w.v[i]) == 0)
            free(w.v[i]);
        else
            w.v[k++] = w.v[i];
    }
    w.v[k] = NULL;
    return w.v;
}

void complete_free(char **words)
{
    if (words == NULL)
        return;
    for (char **p = words; *p; p++)
        free(*p);
    free(words);
}
