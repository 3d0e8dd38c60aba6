/* gg_log: formats the message like printf and hands the bytes to the Rust side
 * (ggcore_sdk_log_line), which sends them to the plugin as a `log` frame.
 * It lives in C because stable Rust cannot define a C-variadic function. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* The gg_error values used here (see include/greengrasssdk.h). */
#define GGCORE_OUT_OF_MEMORY 1
#define GGCORE_INVALID_PARAMETER 2

/* In src/lib.rs: checks the level and writes the line; returns a gg_error. */
extern int ggcore_sdk_log_line(int level, const char *text, size_t len);

int ggcore_gg_log(int level, const char *format, ...);

/* Exported as gg_log, version node 1.0 (version.map). */
__asm__(".symver ggcore_gg_log, gg_log@@aws_greengrass_core_sdk_c_1.0");

int ggcore_gg_log(int level, const char *format, ...) {
    char small[512];
    char *text = small;
    va_list args;
    int needed;
    int rc;

    if (format == NULL) {
        return GGCORE_INVALID_PARAMETER;
    }
    va_start(args, format);
    needed = vsnprintf(small, sizeof small, format, args);
    va_end(args);
    if (needed < 0) {
        return GGCORE_INVALID_PARAMETER;
    }
    if ((size_t)needed >= sizeof small) {
        /* A long line: format again into a buffer of the right size. */
        text = malloc((size_t)needed + 1);
        if (text == NULL) {
            return GGCORE_OUT_OF_MEMORY;
        }
        va_start(args, format);
        needed = vsnprintf(text, (size_t)needed + 1, format, args);
        va_end(args);
        if (needed < 0) {
            free(text);
            return GGCORE_INVALID_PARAMETER;
        }
    }
    rc = ggcore_sdk_log_line(level, text, (size_t)needed);
    if (text != small) {
        free(text);
    }
    return rc;
}
