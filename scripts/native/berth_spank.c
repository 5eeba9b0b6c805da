/*
 * berth_spank.so: the --container-* options of sbatch, salloc and srun, named as pyxis names
 * them (--container-image, -mounts, -workdir, -env, -name, --[no-]container-mount-home,
 * --container-writable/-readonly), each with a BERTH_CONTAINER_* environment variable used
 * when the option is not given.
 *
 * Only option plumbing lives here; everything else is done by berthd and the berth hooks.
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
#include <sys/wait.h>
#include <unistd.h>
#include <slurm/spank.h>

SPANK_PLUGIN(berth, 1);

#ifndef BERTH_BIN
#define BERTH_BIN "/usr/local/bin/berth"
#endif
#define BERTH_VALUE_MAX 4096
#define BERTH_OUT_MAX 65536

/*
 * The option family, named as pyxis names them. Each has an environment variable that is
 * used when the option is not on the command line; the value that wins is handed to
 * `berth submit-check` in that same variable. The two pairs of flags set one variable each.
 */
enum { OPT_IMAGE, OPT_MOUNTS, OPT_WORKDIR, OPT_ENV, OPT_NAME, OPT_MOUNT_HOME, OPT_READONLY, OPT_COUNT };

static const char *const opt_env[OPT_COUNT] = {
    "BERTH_CONTAINER_IMAGE", "BERTH_CONTAINER_MOUNTS", "BERTH_CONTAINER_WORKDIR",
    "BERTH_CONTAINER_ENV", "BERTH_CONTAINER_NAME", "BERTH_CONTAINER_MOUNT_HOME",
    "BERTH_CONTAINER_READONLY",
};
static char *opt_value[OPT_COUNT];
/* flags: which of a pair was given, to refuse both */
static int flag_seen[OPT_COUNT][2];

/* val: option index * 2 + (flag value for the boolean pairs) */
static int option_cb(int val, const char *optarg, int remote)
{
    (void)remote;
    int opt = val / 2;
    int on = val % 2;
    if (opt < 0 || opt >= OPT_COUNT)
        return ESPANK_BAD_ARG;
    const char *value = optarg;
    if (opt == OPT_MOUNT_HOME || opt == OPT_READONLY) {
        flag_seen[opt][on] = 1;
        if (flag_seen[opt][0] && flag_seen[opt][1]) {
            slurm_error("berth: %s are given together; choose one",
                        opt == OPT_MOUNT_HOME ? "--container-mount-home and --no-container-mount-home"
                                              : "--container-writable and --container-readonly");
            return ESPANK_BAD_ARG;
        }
        value = on ? "1" : "0";
    } else if (value == NULL || value[0] == '\0') {
        slurm_error("berth: --container-%s needs a value (see sbatch --help)",
                    opt == OPT_IMAGE ? "image" : opt == OPT_MOUNTS ? "mounts" : opt == OPT_WORKDIR ? "workdir" : opt == OPT_ENV ? "env" : "name");
        return ESPANK_BAD_ARG;
    }
    if (strlen(value) > BERTH_VALUE_MAX) {
        slurm_error("berth: an option value is longer than %d characters", BERTH_VALUE_MAX);
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

static struct spank_option options[] = {
    { "container-image", "IMAGE", "[berth] run the job in a Docker container made from IMAGE (env BERTH_CONTAINER_IMAGE)", 1, OPT_IMAGE * 2, option_cb },
    { "container-mounts", "SRC:DST[:ro][,...]", "[berth] bind-mount host paths into the container (env BERTH_CONTAINER_MOUNTS)", 1, OPT_MOUNTS * 2, option_cb },
    { "container-workdir", "PATH", "[berth] working directory inside the container (env BERTH_CONTAINER_WORKDIR)", 1, OPT_WORKDIR * 2, option_cb },
    { "container-env", "NAME[,...]", "[berth] host environment variables that override the image's (env BERTH_CONTAINER_ENV)", 1, OPT_ENV * 2, option_cb },
    { "container-name", "NAME", "[berth] name the container; steps reuse it by name (env BERTH_CONTAINER_NAME)", 1, OPT_NAME * 2, option_cb },
    { "container-mount-home", NULL, "[berth] bind-mount your home directory (env BERTH_CONTAINER_MOUNT_HOME=1)", 0, OPT_MOUNT_HOME * 2 + 1, option_cb },
    { "no-container-mount-home", NULL, "[berth] do not bind-mount your home directory (env BERTH_CONTAINER_MOUNT_HOME=0)", 0, OPT_MOUNT_HOME * 2, option_cb },
    { "container-writable", NULL, "[berth] writable container root file system (env BERTH_CONTAINER_READONLY=0)", 0, OPT_READONLY * 2, option_cb },
    { "container-readonly", NULL, "[berth] read-only container root file system (env BERTH_CONTAINER_READONLY=1)", 0, OPT_READONLY * 2 + 1, option_cb },
};

int slurm_spank_init(spank_t sp, int ac, char **av)
{
    (void)ac;
    (void)av;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        spank_err_t rc = spank_option_register(sp, &options[i]);
        if (rc != ESPANK_SUCCESS) {
            slurm_error("berth: cannot register --%s: %s", options[i].name, spank_strerror(rc));
            return -1;
        }
    }
    return 0;
}

/* Reads all of fd into buf (NUL-terminated, truncated to size - 1). */
static void read_all(int fd, char *buf, size_t size)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == size - 1) {
            char sink[512];
            while (read(fd, sink, sizeof sink) > 0) {
            }
            break;
        }
    }
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
}

/*
 * Runs `berth submit-check` (no shell) with the winning option values in its environment:
 * it checks them, pins the image to its digest and prints NAME=VALUE lines for the prolog;
 * a bad value, a missing image or a registry error fail the submission here, with berth's
 * message, instead of draining a node at the prolog. Output and errors go to files, not
 * pipes, so a large error cannot block the child.
 */
static int submit_check(const char *berth, const char *site_registries, char *out, size_t out_size)
{
    FILE *o = tmpfile();
    FILE *e = tmpfile();
    if (o == NULL || e == NULL) {
        snprintf(out, out_size, "berth: cannot make temporary files: %s", strerror(errno));
        if (o) fclose(o);
        if (e) fclose(e);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(out, out_size, "berth: cannot start %s: %s", berth, strerror(errno));
        fclose(o);
        fclose(e);
        return -1;
    }
    if (pid == 0) {
        dup2(fileno(o), STDOUT_FILENO);
        dup2(fileno(e), STDERR_FILENO);
        if (site_registries != NULL)
            setenv("BERTH_SITE_REGISTRIES", site_registries, 1);
        for (int i = 0; i < OPT_COUNT; i++)
            if (opt_value[i] != NULL)
                setenv(opt_env[i], opt_value[i], 1);
        execl(berth, berth, "submit-check", (char *)NULL);
        fprintf(stderr, "berth: cannot run %s to check the container options: %s", berth, strerror(errno));
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    FILE *f = ok ? o : e;
    rewind(f);
    read_all(fileno(f), out, out_size);
    fclose(o);
    fclose(e);
    if (!ok && out[0] == '\0')
        snprintf(out, out_size, "berth: %s submit-check failed without a message", berth);
    return ok ? 0 : -1;
}

static int any_option(void)
{
    for (int i = 0; i < OPT_COUNT; i++) {
        if (opt_value[i] != NULL)
            return 1;
        const char *v = getenv(opt_env[i]);
        if (v != NULL && v[0] != '\0')
            return 1;
    }
    return 0;
}

/* Runs after option processing; job control env can be set only in allocator/local context. */
int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
    const char *berth = BERTH_BIN;
    const char *site_registries = NULL;
    for (int i = 0; i < ac; i++) {
        if (strncmp(av[i], "berth=", 6) == 0)
            berth = av[i] + 6;
        else if (strncmp(av[i], "site_registries=", 16) == 0)
            site_registries = av[i] + 16;
    }
    spank_context_t ctx = spank_context();
    if (ctx != S_CTX_ALLOCATOR && ctx != S_CTX_LOCAL)
        return 0;
    if (!any_option())
        return 0;
    static char result[BERTH_OUT_MAX];
    if (submit_check(berth, site_registries, result, sizeof result) != 0) {
        slurm_error("%s", result);
        return -1;
    }
    /* NAME=VALUE lines: each reaches the prolog and epilog as SPANK_NAME */
    char *save = NULL;
    for (char *line = strtok_r(result, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq == NULL || strncmp(line, "BERTH_", 6) != 0)
            continue;
        *eq = '\0';
        spank_err_t rc = spank_job_control_setenv(sp, line, eq + 1, 1);
        if (rc != ESPANK_SUCCESS) {
            slurm_error("berth: cannot pass %s to the job: %s", line, spank_strerror(rc));
            return -1;
        }
    }
    return 0;
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
    (void)sp;
    (void)ac;
    (void)av;
    for (int i = 0; i < OPT_COUNT; i++) {
        free(opt_value[i]);
        opt_value[i] = NULL;
    }
    return 0;
}
