/*
 * berth-hook: `berth hook step-prolog|step-epilog` without a Node.js process. The SPANK plugin
 * runs it as root in slurmstepd, once per container step and node (berth_run.c
 * berth_run_hook); it sends the same StepPrologue and StepEpilogue requests as the Node hook
 * (services/cli/hook.ts stepPrologueRequest, stepEpilogueRequest), read from the same
 * variables, over berthd's admin socket (berth_grpc.c), and answers as it does:
 *   berthd's answer OK        the step prologue's warnings on stdout, exit 0
 *   berthd's error answer     `berth: job J step S on NODE: REASON` on stderr, exit 1; a step
 *                             prologue's node fault also drains the node (hook-faults.ts)
 *   berthd did not answer in time: as an error answer, the node's fault (TIMEOUT)
 * and hands everything else to the Node hook, by exec with the same environment, so that the
 * retries through a restart of berthd stay in one place (services/cli/hook-retry.ts):
 *   berthd not reachable (no socket, refused): nothing was sent
 *   berthd said it is recovering (AGENT_UNAVAILABLE), or the call was cut off mid-flight:
 *                             the Node hook retries exactly these, both calls being idempotent
 *                             through them (hook-retry.ts); with BERTH_HOOK_RETRY_SECONDS=0
 *                             (no retry) berth-hook fails them itself
 *   anything the Node hook would refuse before calling (a malformed id or --container-* value,
 *   not root, text that is not UTF-8): it says why, as before
 *
 *
 * For slurmd's prolog and epilog (scripts/slurm/prolog, epilog) it answers the job without a
 * container, as services/cli/main.ts does before it loads anything: exit 0, no Node.js start
 * for the many jobs that are not berth's. The epilog of any other job sends JobEpilogue as
 * the Node hook does (job_epilogue), its prolog JobPrologue (job_prologue): a job fault's line
 * and exit 0, a node fault's drain and exit 1, as hook.ts prologFailed; berthd away,
 * recovering or cut off goes to `berth hook prolog`, which asks again as it would itself.
 *
 * `berth-hook submit-check`, run as the user by the plugin at an srun in a job, is `berth
 * submit-check` answered by berthd's SubmitCheck over the user socket (berth_submit_check.c).
 *
 * Its files: this one the dispatch and the hand-over to the Node hook; berth_hook_step.c the
 * step hooks; berth_hook_job.c the job's prolog and epilog, berth_hook_allocation.c the
 * job's CPUs and memory on the node for its prologue; berth_hook_options.c the
 * --container-* options of a request; berth_hook_env.c the environment, the node and its
 * socket; berth_hook_faults.c the drain of the node and which answers are asked again; what
 * they share in berth_hook.h.
 *
 *   berth-hook [--berth=/usr/local/bin/berth] step-prolog|step-epilog|prolog|epilog|submit-check
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "berth_hook.h"
#include "berth_submit_check.h"

const char *kind;
const char *berth = "/usr/local/bin/berth";
char node[256];
const char *job_id;

/* Hands the hook to `berth hook KIND` with this environment; returns only when it cannot. */
int fallback(void)
{
    fflush(stdout);
    char *args[] = { (char *)berth, "hook", (char *)kind, NULL };
    execv(berth, args);
    fprintf(stderr, "berth: %s: cannot run %s: %s\n", kind, berth, strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--berth=", 8) == 0)
            berth = argv[i] + 8;
        else if (kind == NULL)
            kind = argv[i];
        else
            kind = "";
    }
    if (kind != NULL && strcmp(kind, "submit-check") == 0)
        return submit_check(berth);
    if (kind != NULL && (strcmp(kind, "prolog") == 0 || strcmp(kind, "epilog") == 0)) {
        /* the epilog also runs for a job whose steps had containers of their own */
        if (no_container_image() && !(strcmp(kind, "epilog") == 0 && has_step_files()))
            return 0;
        return strcmp(kind, "epilog") == 0 ? job_epilogue() : job_prologue();
    }
    int prolog = kind && strcmp(kind, "step-prolog") == 0;
    if (kind == NULL || (!prolog && strcmp(kind, "step-epilog") != 0)) {
        fprintf(stderr, "usage: berth-hook [--berth=PATH] step-prolog|step-epilog|prolog|epilog|submit-check\n");
        return 2;
    }
    return step_hook(prolog);
}
