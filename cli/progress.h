/* Progress reporting on stderr: a live line redrawn in place when stderr is a terminal,
 * plain log lines otherwise (so CI logs and pipes stay readable). */
#ifndef POPSTEER_PROGRESS_H
#define POPSTEER_PROGRESS_H

#include "util/clock.h" /* ps_now_seconds, for the durations the commands print */

typedef struct cli_progress {
    int enabled;   /* 0 with --quiet */
    int tty;       /* stderr is a terminal */
    int live;      /* a live line is on screen and must be cleared before other output */
    double last;   /* time of the last redraw, to limit redraws to a few per second */
} cli_progress;

void cli_progress_init(cli_progress *p, int quiet);
/* Redraws the live line (terminal only; rate-limited unless force). */
void cli_progress_live(cli_progress *p, int force, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A permanent line (clears a live line first). */
void cli_progress_line(cli_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_progress_done(cli_progress *p);
/* "1h02m", "3m05s", "12.3s" */
void cli_format_duration(double seconds, char *buf, unsigned size);

#endif
