/*
 * berth_spank.so: the --container-* options of sbatch, salloc and srun, named as pyxis names
 * them (--container-image, -mounts, -workdir, -env, -name, --[no-]container-mount-home,
 * --container-writable/-readonly), each with a BERTH_CONTAINER_* environment variable used
 * when the option is not given.
 *
 * Only option plumbing lives here; everything else is done by berthd and the berth hooks.
 * This file holds the SPANK entry points and the allocator and local (srun) side; the
 * remote side, slurmstepd's native launch of a container step's tasks, is
 * berth_spank_tasks.c, and running the berth command is berth_run.c. Both sit below this
 * file: neither calls back into it.
 * The options are registered with spank_option_register() in slurm_spank_init because a
 * static spank_options table is seen by srun only, not by sbatch/salloc (allocator context).
 * In allocator and local context `berth submit-check` (run as the user) checks the values and
 * pins the image to its digest; a bad value fails the submission with berth's message. The
 * NAME=VALUE lines it prints are exported with spank_job_control_setenv, so the prolog and
 * epilog see SPANK_BERTH_CONTAINER_IMAGE (REGISTRY/NAME@sha256:...),
 * SPANK_BERTH_CONTAINER_IMAGE_REQUESTED (what the user wrote), SPANK_BERTH_CONTAINER_MOUNTS...
 * The berth command is /usr/local/bin/berth unless plugstack.conf gives `berth=PATH` after
 * the plugin. `site_registries=HOST[,HOST]` names registries only the node agents hold
 * credentials for: their images are passed on unpinned, to be resolved at the prolog.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "berth_options.h"
#include "berth_run.h"
#include "berth_spank_tasks.h"

SPANK_PLUGIN(berth, 1);

#define BERTH_VALUE_MAX 4096

/*
 * The option family, named as pyxis names them (berth_options.h, generated from
 * services/shared/spank-options.ts). Each option sets a variable, which is used when the
 * option is not on the command line; the value that wins is handed to `berth submit-check`
 * in that same variable. A pair of flags (--container-writable/-readonly) sets one variable.
 */
static const char *const opt_env[OPT_COUNT] = BERTH_OPTION_VARS;
static char *opt_value[OPT_COUNT];
/* flags: which of a pair was given, to refuse both */
static int flag_seen[OPT_COUNT][2];

static int option_cb(int val, const char *optarg, int remote);
static struct spank_option options[] = { BERTH_SPANK_OPTIONS(option_cb) };
enum { N_OPTIONS = sizeof options / sizeof options[0] };

/* the first option (in the table's order) that sets variable opt */
static const struct spank_option *option_of(int opt)
{
    for (int k = 0; k < N_OPTIONS; k++)
        if (options[k].val / 2 == opt)
            return &options[k];
    return NULL;
}

static int is_flag(int opt)
{
    const struct spank_option *o = option_of(opt);
    return o != NULL && o->has_arg == 0;
}

/* "--A and --B": the two flags that set variable opt, in the table's order */
static void flag_pair(int opt, char *out, size_t n)
{
    const char *names[2] = { "?", "?" };
    for (int k = 0, i = 0; k < N_OPTIONS && i < 2; k++)
        if (options[k].val / 2 == opt)
            names[i++] = options[k].name;
    snprintf(out, n, "--%s and --%s", names[0], names[1]);
}

/* val: option index * 2 + (flag value for the boolean ones) */
static int option_cb(int val, const char *optarg, int remote)
{
    (void)remote;
    int opt = val / 2;
    int on = val % 2;
    if (opt < 0 || opt >= OPT_COUNT)
        return ESPANK_BAD_ARG;
    const char *value = optarg;
    if (is_flag(opt)) {
        flag_seen[opt][on] = 1;
        if (flag_seen[opt][0] && flag_seen[opt][1]) {
            char pair[128];
            flag_pair(opt, pair, sizeof pair);
            slurm_error("berth: %s are given together; choose one", pair);
            return ESPANK_BAD_ARG;
        }
        value = on ? "1" : "0";
    } else if (value == NULL || value[0] == '\0') {
        slurm_error("berth: --%s needs a value (see srun --help)", option_of(opt)->name);
        return ESPANK_BAD_ARG;
    }
    if (strlen(value) > BERTH_VALUE_MAX) {
        slurm_error("berth: --%s is longer than %d characters", option_of(opt)->name, BERTH_VALUE_MAX);
        return ESPANK_BAD_ARG;
    }
    char *copy = strdup(value);
    if (copy == NULL) {
        slurm_error("berth: out of memory storing an option");
        return ESPANK_ERROR;
    }
    free(opt_value[opt]);
    opt_value[opt] = copy;
    return ESPANK_SUCCESS;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
    (void)ac;
    (void)av;
    for (int i = 0; i < N_OPTIONS; i++) {
        spank_err_t rc = spank_option_register(sp, &options[i]);
        if (rc != ESPANK_SUCCESS) {
            slurm_error("berth: cannot register --%s: %s", options[i].name, spank_strerror(rc));
            return -1;
        }
    }
    return 0;
}

/*
 * Which options srun's own command line gives (not only inherited from the job's
 * sbatch/salloc options, which Slurm passes on to every srun of the job): explicit[i].
 */
static void srun_explicit(int explicit[OPT_COUNT])
{
    static char buf[BERTH_OUT_MAX];
    memset(explicit, 0, sizeof(int) * OPT_COUNT);
    FILE *f = fopen("/proc/self/cmdline", "r");
    if (f == NULL)
        return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
        const char *arg = buf + i;
        for (int k = 0; k < N_OPTIONS; k++) {
            size_t len = strlen(options[k].name);
            if (strncmp(arg, "--", 2) == 0 && strncmp(arg + 2, options[k].name, len) == 0 && (arg[2 + len] == '\0' || arg[2 + len] == '='))
                explicit[options[k].val / 2] = 1;
        }
    }
}

static const struct { const char *name; int opt; int invert; } aliases[] = BERTH_PYXIS_ALIASES;
enum { N_ALIASES = sizeof aliases / sizeof aliases[0] };

/*
 * What a new job records of the option variables it was made with, one job control variable
 * each (SUBMIT_ENV_PREFIX + the variable's name = its value): Slurm hands them to every process
 * of the job as SLURM_SPANK_<that>, so an srun inside the job can tell a variable the job's
 * environment carries (exported for sbatch or salloc, and so in the batch script's and every
 * srun's environment) from one the user set for that srun.
 */
#define SUBMIT_ENV_PREFIX "BERTH_SUBMIT_ENV_"

/* 1 when variable name has value in the job's environment as it was made */
static int from_job_env(const char *name, const char *value)
{
    char key[128];
    if (snprintf(key, sizeof key, "SLURM_SPANK_" SUBMIT_ENV_PREFIX "%s", name) >= (int)sizeof key)
        return 0;
    const char *recorded = getenv(key);
    return recorded != NULL && strcmp(recorded, value) == 0;
}

/* a variable that counts: set, not empty, and (in_job) not what the job was made with */
static const char *own_var(const char *name, int in_job)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0' || (in_job && from_job_env(name, v)))
        return NULL;
    return v;
}

/*
 * An option's variable when the command line does not give it: BERTH_CONTAINER_*, else pyxis's
 * PYXIS_CONTAINER_* (PYXIS_CONTAINER_WRITABLE=1 is BERTH_CONTAINER_READONLY=0). NULL when
 * neither is set; a value of an inverted alias that is not yes/no is handed on as it is, and
 * `berth submit-check` refuses it (as BERTH_CONTAINER_READONLY's). For an srun inside a job
 * (in_job), pyxis's way: the variables set for that srun count, not those the job was made
 * with (from_job_env), which every srun of the job inherits.
 */
static const char *env_value(int opt, int in_job)
{
    const char *v = own_var(opt_env[opt], in_job);
    if (v != NULL)
        return v;
    for (size_t k = 0; k < N_ALIASES; k++) {
        if (aliases[k].opt != opt || (v = own_var(aliases[k].name, in_job)) == NULL)
            continue;
        if (!aliases[k].invert)
            return v;
        if (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0)
            return "0";
        if (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0 || strcasecmp(v, "off") == 0)
            return "1";
        return v;
    }
    return NULL;
}

/*
 * An srun inside a job that names the job's own image again, and no other option: the job's
 * submit check pinned that image (SLURM_SPANK_BERTH_CONTAINER_IMAGE, which Slurm gives every
 * process of the job), so the step gets the same digest without a check of its own: no
 * process started, no registry asked. The step runs the very image version the job's other
 * steps run, even if the tag has moved since. The values are the user's to set (as anything
 * given to `berth submit-check` is); berthd judges the image when it makes the container.
 * The step joins the job's container, as berthd would choose for it (a step that names the
 * job's image and asks for nothing else of its own).
 * Returns 1 when the job's pinned image was taken.
 */
static int reuse_job_image(const char *const given[OPT_COUNT])
{
    for (int i = 0; i < OPT_COUNT; i++)
        if (i != OPT_IMAGE && given[i] != NULL)
            return 0;
    const char *asked = given[OPT_IMAGE];
    const char *pinned = getenv("SLURM_SPANK_" BERTH_VAR_IMAGE);
    const char *requested = getenv("SLURM_SPANK_" BERTH_VAR_IMAGE "_REQUESTED");
    if (asked == NULL || pinned == NULL || requested == NULL || strchr(pinned, '@') == NULL)
        return 0;
    if (strcmp(asked, requested) != 0 && strcmp(asked, pinned) != 0)
        return 0;
    return setenv(BERTH_VAR_IMAGE, pinned, 1) == 0 && setenv(BERTH_VAR_IMAGE "_REQUESTED", requested, 1) == 0;
}

/* a new job's record of the option variables it was made with (from_job_env reads it) */
static int record_job_env(spank_t sp)
{
    char key[128];
    for (int i = 0; i < OPT_COUNT + N_ALIASES; i++) {
        const char *name = i < OPT_COUNT ? opt_env[i] : aliases[i - OPT_COUNT].name;
        const char *v = getenv(name);
        if (v == NULL || v[0] == '\0')
            continue;
        spank_err_t rc = ESPANK_BAD_ARG;
        if (snprintf(key, sizeof key, SUBMIT_ENV_PREFIX "%s", name) < (int)sizeof key)
            rc = spank_job_control_setenv(sp, key, v, 1);
        if (rc != ESPANK_SUCCESS) {
            slurm_error("berth: cannot record %s for the job's steps: %s", name, spank_strerror(rc));
            return -1;
        }
    }
    return 0;
}

/*
 * Allocator and local context: checks the options as the user (`berth submit-check`), which
 * pins the image and prints NAME=VALUE lines; at an srun in a job, berthd on the node answers
 * the same check (`berth-hook submit-check`, berth_run_submit_check), without a Node.js start. For a new job they go to the prolog and epilog
 * (job control env, SPANK_NAME there); an srun that names a container also sets them, with
 * BERTH_STEP_CONTAINER=1, in its own environment, which its tasks get and the remote side reads.
 * Inside an allocation an srun's own command line counts, and, as in pyxis, the variables set
 * for it; not the job's options, which Slurm passes on to every srun, nor the variables the job
 * was made with (exported for sbatch or salloc, and so in every srun's environment): those do
 * not make every step a container step.
 */
static int submit(spank_t sp, const struct berth_args *a, spank_context_t ctx)
{
    int in_job = ctx == S_CTX_LOCAL && getenv("SLURM_JOB_ID") != NULL;
    int explicit[OPT_COUNT];
    srun_explicit(explicit);
    /* what counts for each option: the command line's, else the variable's (env_value) */
    const char *given[OPT_COUNT];
    for (int i = 0; i < OPT_COUNT; i++) {
        given[i] = in_job && !explicit[i] ? NULL : opt_value[i];
        if (given[i] == NULL)
            given[i] = env_value(i, in_job);
    }
    /* an srun of its own (not in a job) runs its tasks in the container it asks for */
    int step_container = ctx == S_CTX_LOCAL && (!in_job || given[OPT_IMAGE] != NULL || given[OPT_NAME] != NULL);
    if (in_job && !step_container)
        return 0;
    if (in_job && given[OPT_IMAGE] != NULL && reuse_job_image(given)) {
        /* the job's container as it is: berthd would choose it for this step too (step-containers.ts) */
        if (setenv("BERTH_STEP_CONTAINER", "job", 1) != 0) {
            slurm_error("berth: cannot mark the step for its container: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    const char *env[2 * OPT_COUNT + 9];
    int n = 0;
    int any = 0;
    for (int i = 0; i < OPT_COUNT; i++) {
        env[n++] = opt_env[i];
        env[n++] = given[i] != NULL ? given[i] : "";
        any |= given[i] != NULL;
    }
    if (!any)
        return 0;
    /* a new job's options, or a step's of a running job (the job's own: --container-save) */
    env[n++] = "BERTH_SUBMIT_FOR";
    env[n++] = in_job ? "step" : "job";
    if (a->site_registries != NULL) {
        env[n++] = "BERTH_SITE_REGISTRIES";
        env[n++] = a->site_registries;
    }
    env[n++] = "BERTH_RUN_DIR";
    env[n++] = a->run_dir;
    /* where relative mount sources (./data) are taken from, as pyxis takes them: the directory
     * sbatch, salloc or srun runs in (berthd, answering an in-job srun's check, has its own) */
    static char cwd[4096];
    if (getcwd(cwd, sizeof cwd) != NULL) {
        env[n++] = "BERTH_SUBMIT_CWD";
        env[n++] = cwd;
    }
    env[n] = NULL;
    static char result[BERTH_OUT_MAX];
    const char *argv[] = { "submit-check", NULL };
    /* an srun in a job, on a node: berthd there answers the check (berth-hook submit-check,
     * no Node.js start; it runs `berth submit-check` itself when berthd cannot answer) */
    int rc = in_job && step_container ? berth_run_submit_check(a, env, result, sizeof result)
                                      : berth_run(a->berth, argv, env, result, sizeof result);
    if (rc != 0) {
        slurm_error("%s", result);
        return -1;
    }
    /* srun's own environment is what its tasks get (spank_setenv is for remote context) */
    /* "job": an srun of its own made the job with these options, so its steps join the job's
     * container as it is; "1": an srun in a job asks for a container of its own */
    if (step_container && setenv("BERTH_STEP_CONTAINER", in_job ? "1" : "job", 1) != 0) {
        slurm_error("berth: cannot mark the step for its container: %s", strerror(errno));
        return -1;
    }
    if (!in_job && record_job_env(sp) != 0)
        return -1;
    char *save = NULL;
    for (char *line = strtok_r(result, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        /* submit-check's warnings go to the user's terminal */
        if (strncmp(line, "berth: warning: ", 16) == 0) {
            slurm_spank_log("%s", line);
            continue;
        }
        char *eq = strchr(line, '=');
        if (eq == NULL || strncmp(line, "BERTH_", 6) != 0)
            continue;
        *eq = '\0';
        spank_err_t rc = ESPANK_SUCCESS;
        if (!in_job)
            rc = spank_job_control_setenv(sp, line, eq + 1, 1);
        if (rc == ESPANK_SUCCESS && step_container && setenv(line, eq + 1, 1) != 0)
            rc = ESPANK_ERROR;
        if (rc != ESPANK_SUCCESS) {
            slurm_error("berth: cannot pass %s to the job: %s", line, spank_strerror(rc));
            return -1;
        }
    }
    return 0;
}

/* Runs after option processing: submit checks, or (remote) the step's container. */
int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
    struct berth_args a;
    berth_parse_args(ac, av, &a);
    spank_context_t ctx = spank_context();
    if (ctx == S_CTX_REMOTE)
        return berth_tasks_step_prolog(sp, &a);
    if (ctx != S_CTX_ALLOCATOR && ctx != S_CTX_LOCAL)
        return 0;
    return submit(sp, &a, ctx);
}

/* Remote, as root in each task before it becomes the user: joins the step's container. */
int slurm_spank_task_init_privileged(spank_t sp, int ac, char **av)
{
    struct berth_args a;
    berth_parse_args(ac, av, &a);
    return berth_tasks_join(sp, &a);
}

/* Remote, as the user in each task just before the exec: the step's working directory. */
int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
    (void)ac;
    (void)av;
    return berth_tasks_user_init(sp);
}

int slurm_spank_task_exit(spank_t sp, int ac, char **av)
{
    struct berth_args a;
    berth_parse_args(ac, av, &a);
    berth_tasks_exited(sp, &a);
    return 0;
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
    if (spank_context() == S_CTX_REMOTE) {
        struct berth_args a;
        berth_parse_args(ac, av, &a);
        berth_tasks_step_epilog(sp, &a);
    }
    for (int i = 0; i < OPT_COUNT; i++) {
        free(opt_value[i]);
        opt_value[i] = NULL;
    }
    return 0;
}
