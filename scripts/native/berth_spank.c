/*
 * berth_spank.so: adds --container-image=IMAGE to sbatch, salloc and srun.
 *
 * Only option plumbing lives here; everything else is done by berthd and the berth hooks.
 * The option is registered with spank_option_register() in slurm_spank_init because a static
 * spank_options table is seen by srun only, not by sbatch/salloc (allocator context).
 * In allocator and local context the value is exported with spank_job_control_setenv, so the
 * prolog and epilog see SPANK_BERTH_CONTAINER_IMAGE (Slurm also passes the raw option as
 * SPANK__SLURM_SPANK_OPTION_berth_container_image).
 */
#include <stdlib.h>
#include <string.h>
#include <slurm/spank.h>

SPANK_PLUGIN(berth, 1);

#define BERTH_ENV_IMAGE "BERTH_CONTAINER_IMAGE"
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

/* Runs after option processing; job control env can be set only in allocator/local context. */
int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
    (void)ac;
    (void)av;
    if (image == NULL)
        return 0;
    spank_context_t ctx = spank_context();
    if (ctx != S_CTX_ALLOCATOR && ctx != S_CTX_LOCAL)
        return 0;
    spank_err_t rc = spank_job_control_setenv(sp, BERTH_ENV_IMAGE, image, 1);
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
