/*
 * rqlite: the command-line shell for rqlited.
 */
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cli/complete.h"
#include "cli/options.h"
#include "cli/shell.h"

/* Tab completion through libedit's readline layer, which keeps its hooks
 * in globals: the shell being completed for and the words of the last Tab. */
static shell *completing;
static char **offered;
static size_t offeredNext;

/* rl_completion_matches' generator: the words shell_complete found. */
static char *nextOffered(const char *text, int state)
{
    if (state == 0)
        offeredNext = 0;
    return offered && offered[offeredNext] ? strdup(offered[offeredNext++]) : NULL;
}

/* rl_attempted_completion_function: our words, or libedit's file names
 * where a dot command takes a FILE; nothing else falls back to them. */
static char **onTab(const char *text, int start, int end)
{
    bool files = false;
    complete_free(offered);
    offered = shell_complete(completing, rl_line_buffer, start > 0 ? (size_t)start : 0, text, &files);
    rl_attempted_completion_over = !files;
    return offered ? rl_completion_matches(text, nextOffered) : NULL;
}

/* A word ends at a blank, a quote or SQL punctuation; '.' and '/' are
 * kept in it for dot commands and paths. */
static void completionSetup(shell *sh)
{
    completing = sh;
    rl_attempted_completion_function = onTab;
    rl_basic_word_break_characters = " \t\n\"'`><=;|&(),";
}

/* History lives in ~/.rqlite_history, as rqlite's; no HOME, no history. */
static void historyPath(char *path, size_t n)
{
    const char *home = getenv("HOME");
    path[0] = '\0';
    if (home)
        snprintf(path, n, "%s/.rqlite_history", home);
}

/* RQLITE_HISTFILESIZE <= 0 asks for no history at all: rqlite deletes the
 * file at exit instead of writing it. */
static void historySave(const char *path)
{
    const char *hs = getenv("RQLITE_HISTFILESIZE");
    if (hs && atoi(hs) <= 0 && strspn(hs, "-0123456789") == strlen(hs))
        unlink(path);
    else
        write_history(path);
}

/* One input line without its line ending, or NULL at end of input. A
 * terminal gets libedit; piped input is read plainly (libedit would echo
 * it), still after a prompt as rqlite prints one. */
static char *readLine(bool tty, const char *prompt)
{
    char *line = NULL;
    if (tty) {
        line = readline(prompt);
    } else {
        size_t cap = 0;
        fputs(prompt, stdout);
        fflush(stdout);
        if (getline(&line, &cap, stdin) < 0) {
            free(line);
            line = NULL;
            putchar('\n');
        }
    }
    if (line) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
    }
    return line;
}

/* The read-run loop, with history loaded before and saved after it when
 * the input is a terminal. */
static void repl(shell *sh)
{
    bool tty = isatty(0);
    char histfile[4096];
    historyPath(histfile, sizeof histfile);
    bool history = tty && histfile[0];
    if (tty)
        completionSetup(sh);
    if (history) {
        using_history();
        stifle_history(1000);
        read_history(histfile);
    }
    char *line;
    for (;;) {
        /* rebuilt each time: a failover to another host changes it */
        char prompt[320];
        snprintf(prompt, sizeof prompt, "%s> ", shell_prompt(sh));
        if ((line = readLine(tty, prompt)) == NULL)
            break;
        if (tty && line[strspn(line, " \t")] != '\0')
            add_history(line);
        int done = shell_run_line(sh, line);
        free(line);
        if (done)
            break;
    }
    if (history)
        historySave(histfile);
    complete_free(offered);
    offered = NULL;
}

int main(int argc, char **argv)
{
    options o;
    char err[256];
    switch (options_parse(argc, argv, &o, err, sizeof err)) {
    case OPTIONS_HELP:
        options_usage(stdout);
        return 0;
    case OPTIONS_VERSION:
        printf("Version %s, commit unknown, built on unknown\n", RQ_VERSION);
        return 0;
    case OPTIONS_UNKNOWN:
        fprintf(stderr, "ERR! %s\n", err);
        options_usage(stdout);
        return 1;
    case OPTIONS_ERROR:
        fprintf(stderr, "ERR! %s\n", err);
        return 1;
    case OPTIONS_RUN:
        break;
    }
    /* rqlite returns this error from its command function, which its flag
     * library prints as is on stderr; its exit status is not passed on. */
    if (options_host_env(&o, getenv("RQLITE_HOST"), err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 0;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    shell *sh = shell_new(&o.shell);
    char version[64];
    if (shell_connect(sh, version, sizeof version) == 0) {
        printf("Welcome to the rqlite CLI.\nEnter \".help\" for usage hints.\n");
        printf("Connected to %s://%s:%s running version %s\n", o.shell.scheme, o.shell.host, o.shell.port,
               version);
        fflush(stdout);
        repl(sh);
        printf("bye~\n");
    }
    /* rqlite exits 0 when it cannot connect, too. */
    shell_free(sh);
    curl_global_cleanup();
    return 0;
}
