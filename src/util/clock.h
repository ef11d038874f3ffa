/* Monotonic wall-clock time, for durations in progress lines, reports and benchmarks. */
#ifndef POPSTEER_CLOCK_H
#define POPSTEER_CLOCK_H

/* Seconds on CLOCK_MONOTONIC (an arbitrary origin: only differences mean anything). */
double ps_now_seconds(void);

#endif
