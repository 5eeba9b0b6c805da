/* `berth-hook submit-check` (berth_submit_check.c): `berth submit-check` answered by berthd. */
#ifndef BERTH_SUBMIT_CHECK_H
#define BERTH_SUBMIT_CHECK_H
/* Asks berthd's SubmitCheck, prints its stdout and stderr and returns its exit code; execs
 * BERTH submit-check (same environment) whenever berthd does not answer, and returns only
 * when that cannot run either. */
int submit_check(const char *berth);
#endif
