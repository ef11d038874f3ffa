#include "progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

void cli_progress_init(cli_progress *p, int quiet)
{
    p->enabled = !quiet;
    p->tty = isatty(STDERR_FILENO);
    p->live = 0;
    p->last = 0;
}

void cli_progress_live(cli_progress *p, int force, const char *fmt, ...)
{
    if (!p->enabled || !p->tty)
        return;
    double t = ps_now_seconds();
    if (!force && t - p->last < 0.2)
        return;
    p->last = t;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
    p->live = 1;
}

void cli_progress_line(cli_progress *p, const char *fmt, ...)
{
    if (!p->enabled)
        return;
    if (p->live)
        fputs("\r\033[K", stderr);
    p->live = 0;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void cli_progress_done(cli_progress *p)
{
    if (p->live)
        fputs("\r\033[K", stderr);
    p->live = 0;
}

void cli_format_duration(double s, char *buf, unsigned size)
{
    if (s >= 3600)
        snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60)
        snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, size, "%.1fs", s);
}
