/* libFuzzer: rqlited's command line (one argument per line) and Go
 * durations (also the ?freshness= and ?timeout= query parameters). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* config_parse prints usage on errors: run with -close_fd_mask=3. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    uint64_t ms;
    (void)config_parse_duration(text, &ms);
    char *argv[64] = {"rqlited"};
    int argc = 1;
    for (char *save = NULL, *tok = strtok_r(text, "\n", &save); tok && argc < 63;
         tok = strtok_r(NULL, "\n", &save))
        argv[argc++] = tok;
    config cfg;
    int code = 0;
    if (config_parse(&cfg, argc, argv, &code) == 0)
        config_free(&cfg);
    free(text);
    return 0;
}
