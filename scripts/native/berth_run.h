/* The plugin's arguments (plugstack.conf) and how it runs the berth command
 * (berth_run.c). No Slurm headers: nothing here knows the SPANK context it is called in. */
#ifndef BERTH_RUN_H
#define BERTH_RUN_H
#include <stddef.h>

#define BERTH_OUT_MAX 65536

struct berth_args {
    const char *berth;           /* the berth command (berth=PATH) */
    const char *site_registries; /* site_registries=HOST[,HOST] */
    const char *run_dir;         /* run_dir=DIR: berthd's run directory (default /run/berth) */
    const char *hook;            /* hook=PATH: the native step hooks (berth-hook); '' or absent: `berth hook` */
};

/* The arguments after the plugin in plugstack.conf; what is not given has its default. */
void berth_parse_args(int ac, char **av, struct berth_args *a);

/* Runs `berth ARGV...` with NAME=VALUE pairs added to its environment (NULL-terminated),
 * no shell; stdout (on success) or stderr (on failure) lands in out. 0 on exit status 0. */
int berth_run(const char *berth, const char *const argv[], const char *const env[], char *out, size_t out_size);

/* Runs the step hook KIND (step-prolog, step-epilog) as berth_run does: berth-hook when it is
 * there (no Node.js start; it hands what it does not handle to `berth hook KIND`), else
 * `berth hook KIND`. */
int berth_run_hook(const struct berth_args *a, const char *kind, const char *const env[], char *out, size_t out_size);

/* Runs `berth submit-check` as berth_run does, through berth-hook when it is there: it asks
 * berthd's SubmitCheck on the node's user socket (no Node.js start) and execs `berth
 * submit-check` itself whenever berthd cannot answer. ENV should hold BERTH_RUN_DIR. */
int berth_run_submit_check(const struct berth_args *a, const char *const env[], char *out, size_t out_size);
#endif
