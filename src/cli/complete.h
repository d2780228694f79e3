/*
 * complete: what Tab offers at the shell's prompt (a shell addition; rqlite's
 * line editor completes nothing). Pure: the caller supplies the dot
 * commands' .help usages and, on demand, the node's table names.
 *
 *   - the first word, starting with '.': the dot commands (".ba" -> ".backup");
 *   - a dot command's argument, read from its usage: "[on|off]"-style
 *     choices, file names for FILE, table names for [TABLE,...];
 *   - anything else (SQL): table and view names (matched without regard to
 *     case, offered as named) and SQLite keywords, which take the case of
 *     what was typed ("sel" -> "select", "SEL" -> "SELECT").
 */
#ifndef RQ_CLI_COMPLETE_H
#define RQ_CLI_COMPLETE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct complete_src {
    const char *const *usages; /* each dot command's usage, ".mode [column|csv|json|line]" */
    size_t nusages;
    /* The table names, asked for only when they could be offered; *n set
     * to their count (0 when none are known). */
    const char *const *(*tables)(void *ud, size_t *n);
    void *ud;
} complete_src;

/* The words that may replace text, the word of line beginning at byte
 * start: NULL-terminated, sorted, without duplicates, each and the array
 * malloc'd (complete_free), or NULL when none fit. *files is set when file
 * names are what fits there, which the line editor completes itself. */
char **complete_words(const complete_src *src, const char *line, size_t start, const char *text, bool *files);

void complete_free(char **words);

#endif
