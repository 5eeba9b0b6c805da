/* Generated from services/shared/spank-options.ts by scripts/gen-spank-options.ts; do not edit:
 * change the list there and run `npm run gen`. */
#ifndef BERTH_OPTIONS_H
#define BERTH_OPTIONS_H

/* the variables the options set, in the order `berth submit-check` is given them */
enum { OPT_IMAGE, OPT_MOUNTS, OPT_WORKDIR, OPT_ENV, OPT_NAME, OPT_MOUNT_HOME, OPT_READONLY, OPT_BATCH, OPT_COUNT };
#define BERTH_OPTION_VARS { "BERTH_CONTAINER_IMAGE", "BERTH_CONTAINER_MOUNTS", "BERTH_CONTAINER_WORKDIR", "BERTH_CONTAINER_ENV", "BERTH_CONTAINER_NAME", "BERTH_CONTAINER_MOUNT_HOME", "BERTH_CONTAINER_READONLY", "BERTH_CONTAINER_BATCH" }
#define BERTH_VAR_IMAGE "BERTH_CONTAINER_IMAGE"
#define BERTH_VAR_MOUNTS "BERTH_CONTAINER_MOUNTS"
#define BERTH_VAR_WORKDIR "BERTH_CONTAINER_WORKDIR"
#define BERTH_VAR_ENV "BERTH_CONTAINER_ENV"
#define BERTH_VAR_NAME "BERTH_CONTAINER_NAME"
#define BERTH_VAR_MOUNT_HOME "BERTH_CONTAINER_MOUNT_HOME"
#define BERTH_VAR_READONLY "BERTH_CONTAINER_READONLY"
#define BERTH_VAR_BATCH "BERTH_CONTAINER_BATCH"

/* what `berth hook step-prolog` is given for a step's own container */
#define BERTH_STEP_PROLOG_VARS { "BERTH_CONTAINER_IMAGE", "BERTH_CONTAINER_IMAGE_REQUESTED", "BERTH_CONTAINER_MOUNTS", "BERTH_CONTAINER_WORKDIR", "BERTH_CONTAINER_ENV", "BERTH_CONTAINER_NAME", "BERTH_CONTAINER_MOUNT_HOME", "BERTH_CONTAINER_READONLY" }

/* struct spank_option rows (name, arginfo, usage, has_arg, val, callback), in srun --help's
 * order; val is the variable * 2 + the value a flag sets */
#define BERTH_SPANK_OPTIONS(cb) \
    { "container-image", "IMAGE", "[berth] run in a Docker container made from IMAGE (env BERTH_CONTAINER_IMAGE)", 1, OPT_IMAGE * 2, cb }, \
    { "container-mounts", "SRC[:DST[:ro]][,...]", "[berth] bind-mount host paths into the container (env BERTH_CONTAINER_MOUNTS)", 1, OPT_MOUNTS * 2, cb }, \
    { "container-workdir", "PATH", "[berth] working directory inside the container (env BERTH_CONTAINER_WORKDIR)", 1, OPT_WORKDIR * 2, cb }, \
    { "container-env", "NAME[,...]", "[berth] host variables that win over the image's (env BERTH_CONTAINER_ENV)", 1, OPT_ENV * 2, cb }, \
    { "container-name", "NAME", "[berth] name the container; later steps of the job join it by name (env BERTH_CONTAINER_NAME)", 1, OPT_NAME * 2, cb }, \
    { "container-mount-home", NULL, "[berth] bind-mount your home directory (env BERTH_CONTAINER_MOUNT_HOME=1)", 0, OPT_MOUNT_HOME * 2 + 1, cb }, \
    { "no-container-mount-home", NULL, "[berth] do not bind-mount your home directory (env BERTH_CONTAINER_MOUNT_HOME=0)", 0, OPT_MOUNT_HOME * 2, cb }, \
    { "container-writable", NULL, "[berth] writable container root file system (env BERTH_CONTAINER_READONLY=0)", 0, OPT_READONLY * 2, cb }, \
    { "container-readonly", NULL, "[berth] read-only container root file system (env BERTH_CONTAINER_READONLY=1)", 0, OPT_READONLY * 2 + 1, cb }, \
    { "container-batch", NULL, "[berth] sbatch: run the batch script itself in the job's container (env BERTH_CONTAINER_BATCH=1)", 0, OPT_BATCH * 2 + 1, cb },
#endif
