/* Shared between the parts of berth_spank.so: options and submit checks (berth_spank.c),
 * and the native task launch into containers (berth_spank_tasks.c). */
#ifndef BERTH_SPANK_H
#define BERTH_SPANK_H
#include <stddef.h>
#include <slurm/spank.h>

#define BERTH_OUT_MAX 65536

struct berth_args {
    const char *berth;           /* the berth command (berth=PATH) */
    const char *site_registries; /* site_registries=HOST[,HOST] */
    const char *run_dir;         /* run_dir=DIR: berthd's run directory (default /run/berth) */
};

void berth_parse_args(int ac, char **av, struct berth_args *a);

/* Runs `berth ARGV...` with NAME=VALUE pairs added to its environment (NULL-terminated),
 * no shell; stdout (on success) or stderr (on failure) lands in out. 0 on exit status 0. */
int berth_run(const char *berth, const char *const argv[], const char *const env[], char *out, size_t out_size);

/* remote context: prepares the step's container (berthd), joins tasks to it, cleans up */
int berth_tasks_step_prolog(spank_t sp, const struct berth_args *a);
int berth_tasks_join(spank_t sp, const struct berth_args *a);
int berth_tasks_user_init(spank_t sp);
void berth_tasks_step_epilog(spank_t sp, const struct berth_args *a);
void berth_tasks_exited(spank_t sp, const struct berth_args *a);
#endif
