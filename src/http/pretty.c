/* pretty.c: see pretty.h. Works on our own compact output, so it only
 * needs to track strings and nesting. */
#include "http/pretty.h"

static void newline(buf *out, int depth)
{
    buf_putc(out, '\n');
    for (int i = 0; i < depth; i++)
        buf_puts(out, "    ");
}

void pretty_json(const char *in, size_t n, buf *out)
{
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        switch (c) {
        case '"': {
            size_t j = i + 1;
            while (j < n && in[j] != '"')
                j += in[j] == '\\' ? 2 : 1;
            if (j >= n)
                j = n - 1;
            buf_append(out, in + i, j - i + 1);
            i = j;
            break;
        }
        case '{':
        case '[':
            if (i + 1 < n && (in[i + 1] == '}' || in[i + 1] == ']')) {
                buf_putc(out, c);
                buf_putc(out, in[++i]);
                break;
            }
            buf_putc(out, c);
            newline(out, ++depth);
            break;
        case '}':
        case ']':
            newline(out, --depth);
            buf_putc(out, c);
            break;
        case ',':
            buf_putc(out, ',');
            newline(out, depth);
            break;
        case ':':
            buf_puts(out, ": ");
            break;
        case ' ': case '\n': case '\t': case '\r':
            break;
        default:
            buf_putc(out, c);
        }
    }
}
