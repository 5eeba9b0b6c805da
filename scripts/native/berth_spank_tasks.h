/* Remote context (slurmstepd): the native launch of a container step's tasks
 * (berth_spank_tasks.c), called by the entry points in berth_spank.c. */
#ifndef BERTH_SPANK_TASKS_H
#define BERTH_SPANK_TASKS_H
#include <slurm/spank.h>
#include "berth_run.h"

/* init_post_opt: prepares the step's container (`berth hook step-prolog`, berthd) */
int berth_tasks_step_prolog(spank_t sp, const struct berth_args *a);
/* task_init_privileged, as root: joins the task to the container, or marks it to fail */
int berth_tasks_join(spank_t sp, const struct berth_args *a);
/* task_init, as the user: says why a task fails, the step's warning, the working directory */
int berth_tasks_user_init(spank_t sp);
/* exit: the step is over on this node (`berth hook step-epilog`) */
void berth_tasks_step_epilog(spank_t sp, const struct berth_args *a);
/* task_exit: after each task; the node's last one ends the step at once */
void berth_tasks_exited(spank_t sp, const struct berth_args *a);
#endif
