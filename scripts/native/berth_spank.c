/*
 * berth_spank.so: adds --container-image=IMAGE to sbatch, salloc and srun.
 *
 * Only option plumbing lives here; everything else is done by berthd and the berth hooks.
 * The option is registered with spank_option_register() in slurm_spank_init because a static
 * spank_options table is seen by srun only, not by sbatch/salloc (allocator context).
 * In allocator and local context the image is pinned to its digest by `berth resolve` (a bad
 * image fails the submission with berth's message) and exported with spank_job_control_setenv:
 * the prolog and epilog see SPANK_BERTH_CONTAINER_IMAGE (REGISTRY/NAME@sha256:...) and
 * SPANK_BERTH_CONTAINER_IMAGE_REQUESTED (what the user wrote). The berth command is
 * /usr/local/bin/berth unless plugstack.conf gives `berth=PATH` after the plugin.
 * `site_registries=HOST[,HOST]` names registries only the node agents hold credentials for:
 * `berth resolve` passes their images on unpinned, to be resolved at the prolog.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <slurm/spank.h>

SPANK_PLUGIN(berth, 1);

#define BERTH_ENV_IMAGE "BERTH_CONTAINER_IMAGE"
#define BERTH_ENV_REQUESTED "BERTH_CONTAINER_IMAGE_REQUESTED"
#ifndef BERTH_BIN
#define BERTH_BIN "/usr/local/bin/berth"
#endif
#define BERTH_IMAGE_MAX 4096

static char *image = NULL;

static int image_cb(int val, const char *optarg, int remote)
{
    (void)val;
    (void)remote;
    if (optarg == NULL || optarg[0] == '\0') {
        slurm_error("berth: --container-image needs an image name, e.g. "
                    "--container-image=registry.example:5000/team/image:tag");
        return ESPANK_BAD_ARG;
    }
    if (strlen(optarg) > BERTH_IMAGE_MAX) {
        slurm_error("berth: --container-image value is longer than %d characters",
                    BERTH_IMAGE_MAX);
        return ESPANK_BAD_ARG;
    }
    char *copy = strdup(optarg);
    if (copy == NULL) {
        slurm_error("berth: out of memory storing --container-image");
        return ESPANK_ERROR;
    }
    free(image);
    image = copy;
    return ESPANK_SUCCESS;
}

static struct spank_option image_option = {
    "container-image",
    "IMAGE",
    "Run the job's steps in a Docker container made from IMAGE (berth)",
    1,
    0,
    image_cb,
};

int slurm_spank_init(spank_t sp, int ac, char **av)
{
    (void)ac;
    (void)av;
    spank_err_t rc = spank_option_register(sp, &image_option);
    if (rc != ESPANK_SUCCESS) {
        slurm_error("berth: cannot register --container-image: %s", spank_strerror(rc));
        return -1;
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
 * Pins the image to its digest with `berth resolve IMAGE` (no shell): every node of the job
 * then runs exactly that digest, and a missing image or registry error fails the submission
 * here, with berth's message, instead of draining a node at the prolog. Output and errors go
 * to files, not pipes, so a large error cannot block the child.
 */
static int resolve_image(const char *berth, const char *site_registries, const char *ref, char *out, size_t out_size)
{
    FILE *o = tmpfile();
    FILE *e = tmpfile();
    if (o == NULL || e == NULL) {
        snprintf(out, out_size, "cannot make temporary files: %s", strerror(errno));
        if (o) fclose(o);
        if (e) fclose(e);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(out, out_size, "cannot start %s: %s", berth, strerror(errno));
        fclose(o);
        fclose(e);
        return -1;
    }
    if (pid == 0) {
        dup2(fileno(o), STDOUT_FILENO);
        dup2(fileno(e), STDERR_FILENO);
        if (site_registries != NULL)
            setenv("BERTH_SITE_REGISTRIES", site_registries, 1);
        execl(berth, berth, "resolve", ref, (char *)NULL);
        fprintf(stderr, "berth: cannot run %s to check the image: %s", berth, strerror(errno));
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
    if (ok && out[0] == '\0') {
        snprintf(out, out_size, "berth resolve printed no image");
        return -1;
    }
    return ok ? 0 : -1;
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
    if (image == NULL)
        return 0;
    spank_context_t ctx = spank_context();
    if (ctx != S_CTX_ALLOCATOR && ctx != S_CTX_LOCAL)
        return 0;
    char pinned[BERTH_IMAGE_MAX + 1024];
    if (resolve_image(berth, site_registries, image, pinned, sizeof pinned) != 0) {
        slurm_error("%s", pinned);
        return -1;
    }
    spank_err_t rc = spank_job_control_setenv(sp, BERTH_ENV_REQUESTED, image, 1);
    if (rc == ESPANK_SUCCESS)
        rc = spank_job_control_setenv(sp, BERTH_ENV_IMAGE, pinned, 1);
    if (rc != ESPANK_SUCCESS) {
        slurm_error("berth: cannot pass the container image to the job (%s): %s",
                    BERTH_ENV_IMAGE, spank_strerror(rc));
        return -1;
    }
    return 0;
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
    (void)sp;
    (void)ac;
    (void)av;
    free(image);
    image = NULL;
    return 0;
}
