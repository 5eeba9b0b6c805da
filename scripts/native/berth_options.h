/* Generated from services/shared/spank-options.ts by scripts/gen-spank-options.ts; do not edit:
 * change the list there and run `npm run gen`. */
#ifndef BERTH_OPTIONS_H
#define BERTH_OPTIONS_H

/* the variables the options set, in the order `berth submit-check` is given them */
enum { OPT_IMAGE, OPT_MOUNTS, OPT_WORKDIR, OPT_ENV, OPT_NAME, OPT_MOUNT_HOME, OPT_READONLY, OPT_UNSHARE, OPT_BATCH, OPT_SAVE, OPT_REMAP_ROOT, OPT_ENTRYPOINT, OPT_ENTRYPOINT_LOG, OPT_COUNT };
#define BERTH_OPTION_VARS { "BERTH_CONTAINER_IMAGE", "BERTH_CONTAINER_MOUNTS", "BERTH_CONTAINER_WORKDIR", "BERTH_CONTAINER_ENV", "BERTH_CONTAINER_NAME", "BERTH_CONTAINER_MOUNT_HOME", "BERTH_CONTAINER_READONLY", "BERTH_CONTAINER_UNSHARE", "BERTH_CONTAINER_BATCH", "BERTH_CONTAINER_SAVE", "BERTH_CONTAINER_REMAP_ROOT", "BERTH_CONTAINER_ENTRYPOINT", "BERTH_CONTAINER_ENTRYPOINT_LOG" }
#define BERTH_VAR_IMAGE "BERTH_CONTAINER_IMAGE"
#define BERTH_VAR_MOUNTS "BERTH_CONTAINER_MOUNTS"
#define BERTH_VAR_WORKDIR "BERTH_CONTAINER_WORKDIR"
#define BERTH_VAR_ENV "BERTH_CONTAINER_ENV"
#define BERTH_VAR_NAME "BERTH_CONTAINER_NAME"
#define BERTH_VAR_MOUNT_HOME "BERTH_CONTAINER_MOUNT_HOME"
#define BERTH_VAR_READONLY "BERTH_CONTAINER_READONLY"
#define BERTH_VAR_UNSHARE "BERTH_CONTAINER_UNSHARE"
#define BERTH_VAR_BATCH "BERTH_CONTAINER_BATCH"
#define BERTH_VAR_SAVE "BERTH_CONTAINER_SAVE"
#define BERTH_VAR_REMAP_ROOT "BERTH_CONTAINER_REMAP_ROOT"
#define BERTH_VAR_ENTRYPOINT "BERTH_CONTAINER_ENTRYPOINT"
#define BERTH_VAR_ENTRYPOINT_LOG "BERTH_CONTAINER_ENTRYPOINT_LOG"

/* what `berth hook step-prolog` is given for a step's own container */
#define BERTH_STEP_PROLOG_VARS { "BERTH_CONTAINER_IMAGE", "BERTH_CONTAINER_IMAGE_REQUESTED", "BERTH_CONTAINER_MOUNTS", "BERTH_CONTAINER_WORKDIR", "BERTH_CONTAINER_ENV", "BERTH_CONTAINER_NAME", "BERTH_CONTAINER_MOUNT_HOME", "BERTH_CONTAINER_READONLY", "BERTH_CONTAINER_UNSHARE" }

/* pyxis's variables for the options: { name, the option variable (OPT_*), inverted } */
#define BERTH_PYXIS_ALIASES { { "PYXIS_CONTAINER_IMAGE", OPT_IMAGE, 0 }, { "PYXIS_CONTAINER_MOUNTS", OPT_MOUNTS, 0 }, { "PYXIS_CONTAINER_WORKDIR", OPT_WORKDIR, 0 }, { "PYXIS_CONTAINER_ENV", OPT_ENV, 0 }, { "PYXIS_CONTAINER_NAME", OPT_NAME, 0 }, { "PYXIS_CONTAINER_SAVE", OPT_SAVE, 0 }, { "PYXIS_CONTAINER_MOUNT_HOME", OPT_MOUNT_HOME, 0 }, { "PYXIS_CONTAINER_READONLY", OPT_READONLY, 0 }, { "PYXIS_CONTAINER_WRITABLE", OPT_READONLY, 1 }, { "PYXIS_CONTAINER_UNSHARE", OPT_UNSHARE, 0 }, { "PYXIS_CONTAINER_REMAP_ROOT", OPT_REMAP_ROOT, 0 }, { "PYXIS_CONTAINER_ENTRYPOINT", OPT_ENTRYPOINT, 0 }, { "PYXIS_CONTAINER_ENTRYPOINT_LOG", OPT_ENTRYPOINT_LOG, 0 } }

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
    { "container-writable", NULL, "[berth] writable root file system, but its files stay root's: install into your home or a mount instead (env BERTH_CONTAINER_READONLY=0)", 0, OPT_READONLY * 2, cb }, \
    { "container-readonly", NULL, "[berth] read-only container root file system (env BERTH_CONTAINER_READONLY=1)", 0, OPT_READONLY * 2 + 1, cb }, \
    { "container-unshare", "NS[,NS...]", "[berth] namespaces of the container's own: net (loopback only), ipc, uts (env BERTH_CONTAINER_UNSHARE)", 1, OPT_UNSHARE * 2, cb }, \
    { "container-batch", NULL, "[berth] sbatch: run the batch script in the job's container (the default with --container-image) (env BERTH_CONTAINER_BATCH=1)", 0, OPT_BATCH * 2 + 1, cb }, \
    { "no-container-batch", NULL, "[berth] sbatch: run the batch script on the host; its srun steps that name the image join the container (env BERTH_CONTAINER_BATCH=0)", 0, OPT_BATCH * 2, cb }, \
    { "container-save", "IMAGE", "[berth] at the job's end, push its container to IMAGE with your own registry login (env BERTH_CONTAINER_SAVE)", 1, OPT_SAVE * 2, cb }, \
    { "container-remap-root", NULL, "[berth] pyxis: refused, berth runs your containers as you (env BERTH_CONTAINER_REMAP_ROOT=1)", 0, OPT_REMAP_ROOT * 2 + 1, cb }, \
    { "no-container-remap-root", NULL, "[berth] pyxis: accepted, berth never remaps you to root (env BERTH_CONTAINER_REMAP_ROOT=0)", 0, OPT_REMAP_ROOT * 2, cb }, \
    { "container-entrypoint", NULL, "[berth] pyxis: refused, berth does not run the image's ENTRYPOINT (env BERTH_CONTAINER_ENTRYPOINT=1)", 0, OPT_ENTRYPOINT * 2 + 1, cb }, \
    { "no-container-entrypoint", NULL, "[berth] pyxis: accepted, berth does not run the image's ENTRYPOINT (env BERTH_CONTAINER_ENTRYPOINT=0)", 0, OPT_ENTRYPOINT * 2, cb }, \
    { "container-entrypoint-log", NULL, "[berth] pyxis: accepted, no entrypoint output to show (env BERTH_CONTAINER_ENTRYPOINT_LOG=1)", 0, OPT_ENTRYPOINT_LOG * 2 + 1, cb },
#endif
