/*
 * Native task launch: the tasks of a container step join the container's mount and IPC
 * namespaces in slurm_spank_task_init_privileged, as root in the task's own process just
 * before slurmstepd makes it the job's user and execs the command. The tasks stay
 * slurmstepd's children, in the job's cgroup: signals, scancel, time limits, srun --pty and
 * sacct work as for any task, and a task costs no extra process.
 *
 * Which steps: an srun that named --container-image/--container-name itself (the local side
 * sets BERTH_STEP_CONTAINER=1 in the tasks' environment, or =job when that srun made the job
 * and its container), and the batch step of a job whose submit check wrote
 * BERTH_CONTAINER_BATCH=1: every sbatch --container-image, as pyxis runs the batch script,
 * unless --no-container-batch keeps it on the host. A step
 * that joins the job's own container as it is (the batch step, the steps of the srun that made
 * the job, an srun naming the job's pinned image and no other option) asks nobody: berthd
 * published that container in RUN_DIR/NODE/tasks/JOB.job when it started it, and the step's
 * start and end reach berthd as files in RUN_DIR/NODE/step-spool/
 * (services/agent/steps/step-spool.ts), so neither holds up srun, nor needs berthd up. Any
 * other step (or one of those when JOB.job is missing or stale) runs the step prologue hook
 * (berth-hook step-prolog, else `berth hook step-prolog`: berth_run_hook; as root, once per
 * step and node), which asks berthd for the step's container: the job's
 * own, a named one, or a new one made from the step's image; berthd writes
 * RUN_DIR/NODE/tasks/JOB.STEP (pid, start time, workdir, environment) for the tasks to read.
 * The step epilogue hook records its end and removes the step's own container.
 *
 * A job whose container could not be made on this node for a reason of its own (a job fault,
 * recorded by berthd in RUN_DIR/NODE/faults/JOB; the prolog then exited 0 and the node stays
 * in service) runs no step here: every step — the batch step on the host too, plain sruns
 * and `srun berth exec` — fails, its first task saying berthd's reason on the step's stderr
 * (srun's terminal, the batch job's error file).
 *
 * Every joining task first sets no_new_privs, so no setuid program in the image can give it
 * back root; its PID is checked against the recorded start time, so a recycled PID is never
 * joined. The last thing a task does as root is take on the container's own confinement
 * (berth_confine.c): the seccomp filters and capability bounding set of the container's
 * first process, copied once per step and node right after the step prologue. A task whose
 * confinement cannot be had does not start.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <slurm/slurm.h>
#include "berth_confine.h"
#include "berth_options.h"
#include "berth_run.h"
#include "berth_spank_tasks.h"

#define TASK_FILE_MAX 262144

static int step_joins;     /* this step's tasks join a container (set in slurmstepd) */
static int step_spooled;   /* it joined the job's container from JOB.job: its records go to the step spool */
static char task_key[32];  /* the task file its tasks read: JOB.<task_key>, the step id or "job" */
static long long step_start_ms; /* when it started, for the spooled record */
/* the command, for accounting: arguments joined by the unit separator (0x1f) */
static char argv_text[4096];
/* why the step's container could not be had: said by each task, where the user sees it
 * (init_post_opt runs before the step's I/O is connected) */
static char step_error[BERTH_OUT_MAX];
static char step_id[32];   /* "0", "1", ..., "batch" */
static int step_status;    /* wait status of the first task that failed, else of the last */
static int step_tasks_ended;
static char task_workdir[PATH_MAX]; /* --container-workdir of this task's step, '' = srun's */
static char job_id[32];
/* what the step's container runs without, and why (berthd's warnings): task 0 says it */
static char step_warning[BERTH_OUT_MAX];
/* the container's seccomp filters and bounding set, copied in slurmstepd for its tasks */
static struct berth_confinement step_confinement;
/* the job's recorded fault on this node (berthd's message): every step of the job fails with it */
static char job_fault[BERTH_OUT_MAX];

/* "batch", a number, or "" for the extern and interactive steps */
static void step_name(spank_t sp, char *out, size_t n)
{
    uint32_t step = 0;
    out[0] = '\0';
    if (spank_get_item(sp, S_JOB_STEPID, &step) != ESPANK_SUCCESS)
        return;
    if (step == SLURM_BATCH_SCRIPT)
        snprintf(out, n, "batch");
    else if (step != SLURM_EXTERN_CONT && step != SLURM_INTERACTIVE_STEP && step < 0xfffffff0u)
        snprintf(out, n, "%u", step);
}

static int env_is(spank_t sp, const char *name, const char *value)
{
    char buf[16];
    return spank_getenv(sp, name, buf, sizeof buf) == ESPANK_SUCCESS && strcmp(buf, value) == 0;
}

/* `srun --container-image=X berth exec -- CMD` keeps working: berth exec joins by itself */
static int runs_berth_exec(spank_t sp)
{
    int argc = 0;
    char **argv = NULL;
    if (spank_get_item(sp, S_JOB_ARGV, &argc, &argv) != ESPANK_SUCCESS || argc < 1 || argv[0] == NULL)
        return 0;
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    return strcmp(base, "berth") == 0;
}

/* the start time (field 22 of /proc/PID/stat) of pid, or 0 */
static unsigned long long start_time(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    p += 2; /* field 3 */
    for (int field = 3; field < 22 && p != NULL; field++) {
        p = strchr(p, ' ');
        if (p) p++;
    }
    return p ? strtoull(p, NULL, 10) : 0;
}

/*
 * PATH's text into buf (at most n - 1 bytes, NUL-terminated) when it is a regular file of
 * root's that nobody else may write, opened without following a link: its length, or -1
 * with errno (EPERM when it is not such a file).
 */
static ssize_t read_root_file(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) != 0) {
        close(fd);
        errno = EPERM;
        return -1;
    }
    size_t len = 0;
    for (ssize_t r; len < n - 1 && (r = read(fd, buf + len, n - 1 - len)) != 0;) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* what a task file RUN_DIR/NODE/tasks/JOB.KEY says; text holds the lines (env= ones too) */
struct task_file {
    long pid;
    unsigned long long start;
    long uid;                 /* JOB.job only; -1 when absent */
    int net, uts;             /* ns=net, ns=uts: the container's own namespaces the tasks join too (--container-unshare) */
    const char *workdir, *container;
    char *text;
};

/* the value of the first line KEY=... of text into out ('' when there is none) */
static void line_value(const char *text, const char *key, char *out, size_t n)
{
    size_t k = strlen(key);
    out[0] = '\0';
    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > k && strncmp(line, key, k) == 0 && line[k] == '=') {
            snprintf(out, n, "%.*s", (int)(len - k - 1), line + k + 1);
            return;
        }
        line += len + (end ? 1 : 0);
    }
}

/* RUN_DIR/NODE/tasks/JOB.KEY; said in slurmd's log when it cannot be read, unless quiet */
static int read_task_file(const struct berth_args *a, const char *key, struct task_file *tf, int quiet)
{
    static char text[TASK_FILE_MAX];
    const char *node = getenv("SLURMD_NODENAME");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/tasks/%s.%s", a->run_dir, node ? node : "", job_id, key);
    if (read_root_file(path, text, sizeof text) < 0) {
        if (errno == EPERM)
            slurm_error("berth: ignoring %s: not a regular file of root's that only root may write", path);
        else if (!quiet)
            slurm_info("berth: the step's container is not ready (%s: %s); is berthd running on this node?", path, strerror(errno));
        return -1;
    }
    tf->pid = 0;
    tf->start = 0;
    tf->uid = -1;
    tf->net = 0;
    tf->uts = 0;
    tf->workdir = "";
    tf->container = "?";
    tf->text = text;
    for (char *line = text, *end; *line != '\0'; line = end) {
        end = strchr(line, '\n');
        end = end ? end + 1 : line + strlen(line);
        if (strncmp(line, "pid=", 4) == 0)
            tf->pid = strtol(line + 4, NULL, 10);
        else if (strncmp(line, "start=", 6) == 0)
            tf->start = strtoull(line + 6, NULL, 10);
        else if (strncmp(line, "uid=", 4) == 0)
            tf->uid = strtol(line + 4, NULL, 10);
        else if (strncmp(line, "ns=net\n", 7) == 0 || strcmp(line, "ns=net") == 0)
            tf->net = 1;
        else if (strncmp(line, "ns=uts\n", 7) == 0 || strcmp(line, "ns=uts") == 0)
            tf->uts = 1;
    }
    return 0;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/*
 * slurmstepd, once per step and node, right after the step prologue: the confinement of the
 * container's first process (berth-init pause, in the host PID namespace), for every task.
 * On failure no task of the step starts, each says why (as for a failed step prologue: a
 * step's failure, not the node's).
 */
static void copy_confinement(const struct berth_args *a)
{
    struct task_file tf;
    if (read_task_file(a, task_key, &tf, 0) != 0)
        return; /* each task says it */
    if (tf.pid <= 1 || tf.start == 0 || start_time(tf.pid) != tf.start)
        return; /* likewise: the container is gone */
    char err[512];
    double t0 = now_us();
    if (berth_confine_copy(tf.pid, &step_confinement, err, sizeof err) != 0) {
        snprintf(step_error, sizeof step_error,
                 "berth: the tasks of step %s.%s do not start: the container's confinement cannot be copied onto them: %s",
                 job_id, step_id, err);
        slurm_error("%s", step_error);
        return;
    }
    /* the process may have ended and its PID been reused during the copy */
    if (start_time(tf.pid) != tf.start) {
        berth_confine_free(&step_confinement);
        return;
    }
    unsigned insns = 0;
    for (int i = 0; i < step_confinement.nfilters; i++)
        insns += step_confinement.filters[i].len;
    slurm_debug("berth: step %s.%s: copied %d seccomp filter(s), %u instructions, and CapBnd %016llx from pid %ld in %.0f us",
                job_id, step_id, step_confinement.nfilters, insns, (unsigned long long)step_confinement.cap_bnd, tf.pid, now_us() - t0);
}

/*
 * RUN_DIR/NODE/faults/JOB, berthd's record of why the job's container could not be made here
 * (services/agent/jobs/job-faults.ts): its message= line into out. Only a regular file of
 * root's that nobody else may write counts. 1 when the job has a fault here.
 */
static int read_job_fault(const struct berth_args *a, const char *job, char *out, size_t n)
{
    static char text[BERTH_OUT_MAX];
    const char *node = getenv("SLURMD_NODENAME");
    char path[PATH_MAX];
    out[0] = '\0';
    if (snprintf(path, sizeof path, "%s/%s/faults/%s", a->run_dir, node ? node : "", job) >= (int)sizeof path)
        return 0;
    if (read_root_file(path, text, sizeof text) < 0) {
        if (errno == EPERM)
            slurm_error("berth: ignoring %s: not a regular file of root's that only root may write", path);
        return 0;
    }
    for (char *line = text, *end; *line != '\0'; line = end) {
        end = strchr(line, '\n');
        if (end)
            *end++ = '\0';
        else
            end = line + strlen(line);
        if (strncmp(line, "message=", 8) == 0)
            snprintf(out, n, "%s", line + 8);
    }
    if (out[0] == '\0')
        snprintf(out, n, "berth: job %s cannot run on %s: berthd recorded a fault without a message (%s)", job, node ? node : "this node", path);
    return 1;
}

/* wall-clock milliseconds since the epoch, for the step's records */
static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * berthd's rule for the same image (services/agent/steps/step-containers.ts): a pinned
 * reference when the digest is the job's, an unpinned one when written as the job's digest
 * reference is; no image at all is the job's
 */
static int same_image(const char *image, const char *job_digest)
{
    if (image[0] == '\0')
        return 1;
    const char *at = strrchr(image, '@');
    if (at == NULL || at[1] == '\0')
        return strcmp(image, job_digest) == 0;
    const char *jat = strrchr(job_digest, '@');
    return strcmp(at + 1, jat ? jat + 1 : "") == 0;
}

/*
 * Whether the step joins the job's own container as it is, found in RUN_DIR/NODE/tasks/JOB.job
 * (written by berthd when it started the container): only where berthd's StepPrologue would
 * pick that container with nothing of the step's own to apply — the batch step and the steps
 * of the srun that made the job, or a step naming the job's image (or none) and no other
 * --container-* option — for the job's uid, with the container's first process still the
 * recorded one. Anything else asks berthd. The job's warnings go to step_warning.
 */
static int joins_job_file(const struct berth_args *a, uint32_t uid, int job_container, const char *const names[], char values[][4096], int count)
{
    struct task_file tf;
    if (read_task_file(a, "job", &tf, 1) != 0)
        return 0;
    if (tf.uid < 0 || (uint32_t)tf.uid != uid || tf.pid <= 1 || tf.start == 0 || start_time(tf.pid) != tf.start)
        return 0;
    if (!job_container) {
        static char digest[1024];
        line_value(tf.text, "digest", digest, sizeof digest);
        for (int i = 0; i < count; i++) {
            if (strcmp(names[i], BERTH_VAR_IMAGE) == 0) {
                if (!same_image(values[i], digest))
                    return 0;
            } else if (strncmp(names[i], BERTH_VAR_IMAGE "_", sizeof BERTH_VAR_IMAGE) != 0 && values[i][0] != '\0') {
                return 0; /* an option of the step's own (the requested image is only what the user wrote) */
            }
        }
    }
    size_t used = 0;
    step_warning[0] = '\0';
    for (const char *line = tf.text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > 8 && strncmp(line, "warning=", 8) == 0 && used < sizeof step_warning - 1) {
            int w = snprintf(step_warning + used, sizeof step_warning - used, "%.*s\n", (int)(len - 8), line + 8);
            used = w < 0 ? used : used + (size_t)w < sizeof step_warning ? used + (size_t)w : sizeof step_warning - 1;
        }
        line += len + (end ? 1 : 0);
    }
    return 1;
}

/*
 * The step's record for berthd, RUN_DIR/NODE/step-spool/JOB.STEP (read by
 * services/agent/steps/step-spool.ts): its start and command, with `ended` its end and the
 * tasks' wait status too, written whole (a temporary file renamed over it). 0 when written.
 */
static int spool_step(const struct berth_args *a, int ended)
{
    const char *node = getenv("SLURMD_NODENAME");
    char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/%s/step-spool", a->run_dir, node ? node : "") >= (int)sizeof dir
        || snprintf(path, sizeof path, "%s/%s.%s", dir, job_id, step_id) >= (int)sizeof path
        || snprintf(tmp, sizeof tmp, "%s/.%s.%s.%ld", dir, job_id, step_id, (long)getpid()) >= (int)sizeof tmp)
        return -1;
    struct stat st;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        slurm_error("berth: cannot make %s: %s", dir, strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) != 0) {
        slurm_error("berth: not using %s: not a directory of root's that only root may write", dir);
        return -1;
    }
    static char text[2 * sizeof argv_text + 256];
    int w = snprintf(text, sizeof text, "job=%s\nstep=%s\nstart_ms=%lld\nargv=", job_id, step_id, step_start_ms);
    size_t used = w > 0 ? (size_t)w : 0;
    for (const char *p = argv_text; *p != '\0' && used < sizeof text - 64; p++) {
        if (*p == '\\' || *p == '\n') {
            text[used++] = '\\';
            text[used++] = *p == '\n' ? 'n' : '\\';
        } else {
            text[used++] = *p;
        }
    }
    text[used++] = '\n';
    text[used] = '\0';
    if (ended) {
        char status[16] = "";
        if (step_tasks_ended > 0)
            snprintf(status, sizeof status, "%d", step_status);
        w = snprintf(text + used, sizeof text - used, "end_ms=%lld\nstatus=%s\n", now_ms(), status);
        used += w > 0 ? (size_t)w : 0;
    }
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        slurm_error("berth: cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t done = 0;
    while (done < used) {
        ssize_t r = write(fd, text + done, used - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    if (close(fd) != 0 || done < used || rename(tmp, path) != 0) {
        slurm_error("berth: cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int berth_tasks_step_prolog(spank_t sp, const struct berth_args *a)
{
    step_name(sp, step_id, sizeof step_id);
    if (step_id[0] == '\0')
        return 0;
    uint32_t job_no = 0;
    spank_get_item(sp, S_JOB_ID, &job_no);
    snprintf(job_id, sizeof job_id, "%u", job_no);
    /* the job's prologue failed here for a reason of its own: no step of it runs (each task
     * says why in task_init_privileged, once the step's output is connected) */
    if (read_job_fault(a, job_id, job_fault, sizeof job_fault))
        return 0;
    int batch = strcmp(step_id, "batch") == 0;
    int job_container = batch || env_is(sp, "BERTH_STEP_CONTAINER", "job");
    if (batch ? !env_is(sp, "SLURM_SPANK_" BERTH_VAR_BATCH, "1") : !(job_container || env_is(sp, "BERTH_STEP_CONTAINER", "1")))
        return 0;
    if (!batch && runs_berth_exec(sp))
        return 0;
    uint32_t job = 0, uid = 0, gid = 0;
    spank_get_item(sp, S_JOB_ID, &job);
    spank_get_item(sp, S_JOB_UID, &uid);
    spank_get_item(sp, S_JOB_GID, &gid);
    snprintf(job_id, sizeof job_id, "%u", job);
    char uid_s[16], gid_s[16], user[256] = "";
    snprintf(uid_s, sizeof uid_s, "%u", uid);
    snprintf(gid_s, sizeof gid_s, "%u", gid);
    struct passwd pw, *res = NULL;
    char pwbuf[4096];
    if (getpwuid_r(uid, &pw, pwbuf, sizeof pwbuf, &res) == 0 && res != NULL)
        snprintf(user, sizeof user, "%s", pw.pw_name);
    const char *node = getenv("SLURMD_NODENAME");
    static const char *const names[] = BERTH_STEP_PROLOG_VARS;
    enum { N = sizeof names / sizeof names[0] };
    static char values[N][4096];
    const char *env[2 * (N + 9) + 1];
    int n = 0;
    env[n++] = "SLURM_JOB_ID"; env[n++] = job_id;
    env[n++] = "SLURM_STEP_ID"; env[n++] = step_id;
    env[n++] = "SLURM_JOB_UID"; env[n++] = uid_s;
    env[n++] = "SLURM_JOB_GID"; env[n++] = gid_s;
    env[n++] = "SLURM_JOB_USER"; env[n++] = user;
    env[n++] = "SLURMD_NODENAME"; env[n++] = node ? node : "";
    env[n++] = "BERTH_RUN_DIR"; env[n++] = a->run_dir;
    /* the hook may drain this node for a node fault (services/cli/hook-faults.ts) */
    env[n++] = "BERTH_HOOK_CONTEXT"; env[n++] = "slurmstepd";
    argv_text[0] = '\0';
    int argc = 0;
    char **targv = NULL;
    if (spank_get_item(sp, S_JOB_ARGV, &argc, &targv) == ESPANK_SUCCESS) {
        size_t used = 0;
        for (int i = 0; i < argc && i < 32 && targv[i] != NULL; i++) {
            int w = snprintf(argv_text + used, sizeof argv_text - used, "%s%s", i ? "\x1f" : "", targv[i]);
            if (w < 0 || (size_t)w >= sizeof argv_text - used)
                break;
            used += (size_t)w;
        }
    }
    env[n++] = "BERTH_STEP_ARGV"; env[n++] = argv_text;
    /* the job's own container (batch step, or the steps of the srun that made the job): as it is */
    for (int i = 0; i < N && !job_container; i++) {
        if (spank_getenv(sp, names[i], values[i], sizeof values[i]) != ESPANK_SUCCESS)
            values[i][0] = '\0';
        env[n++] = names[i];
        env[n++] = values[i];
    }
    env[n] = NULL;
    step_joins = 1;
    /* the job's own container as it is: from JOB.job, berthd not asked; the start is spooled */
    if (joins_job_file(a, uid, job_container, names, values, N)) {
        step_start_ms = now_ms();
        snprintf(task_key, sizeof task_key, "job");
        if (spool_step(a, 0) == 0) {
            step_spooled = 1;
            copy_confinement(a);
            return 0;
        }
        step_warning[0] = '\0'; /* berthd gives them again */
    }
    snprintf(task_key, sizeof task_key, "%s", step_id);
    static char out[BERTH_OUT_MAX];
    if (berth_run_hook(a, "step-prolog", env, out, sizeof out) != 0) {
        slurm_error("%s", out);
        snprintf(step_error, sizeof step_error, "%s", out);
        return 0;
    }
    snprintf(step_warning, sizeof step_warning, "%s", strstr(out, "berth: warning:") ? strstr(out, "berth: warning:") : "");
    copy_confinement(a);
    return 0;
}

static int join_ns(long pid, const char *ns, int type)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/ns/%s", pid, ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        slurm_error("berth: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = setns(fd, type);
    if (rc != 0)
        slurm_error("berth: cannot join the container's %s namespace: %s", ns, strerror(errno));
    close(fd);
    return rc;
}

/* the task's local id, or -1 */
static int local_task(spank_t sp)
{
    int task = -1;
    return spank_get_item(sp, S_TASK_ID, &task) == ESPANK_SUCCESS ? task : -1;
}

/* one line on the step's stderr (slurmstepd's stderr is task 0's until the task's own is set up) */
static void say(const char *msg)
{
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        n--;
    if (write(STDERR_FILENO, msg, n) < 0 || write(STDERR_FILENO, "\n", 1) < 0) {
        /* nowhere else to say it: slurmd's log has it from slurm_info */
    }
}

/* why this task must not run (said and acted on in task_init), or "" */
static char task_failure[BERTH_OUT_MAX];

/*
 * The task does not start. It is not ended here, in task_init_privileged: slurmstepd would
 * then print errors of its own after berth's line (the failed hook, and its write to unblock
 * the task that is gone). Nothing is joined; the task goes on as slurmstepd makes it, on the
 * host, and in task_init, as the user, just before the exec, the node's first task says why
 * on its stderr and every task exits 1. The step fails; the node is not drained.
 */
static int fail_task(const char *msg)
{
    slurm_info("%s", msg);
    snprintf(task_failure, sizeof task_failure, "%s", msg);
    return 0;
}

/* whether PATH is a directory in the file system of the container whose first process is PID */
static int dir_in_container(long pid, const char *path)
{
    char full[PATH_MAX + 64];
    struct stat st;
    if (snprintf(full, sizeof full, "/proc/%ld/root%s", pid, path) >= (int)sizeof full)
        return 0;
    return stat(full, &st) == 0 && S_ISDIR(st.st_mode);
}

int berth_tasks_join(spank_t sp, const struct berth_args *a)
{
    if (job_fault[0] != '\0')
        return fail_task(job_fault);
    if (!step_joins)
        return 0;
    if (step_error[0] != '\0')
        return fail_task(step_error);
    struct task_file tf;
    char msg[PATH_MAX + 512];
    if (read_task_file(a, task_key, &tf, 0) != 0) {
        snprintf(msg, sizeof msg, "berth: the tasks of step %s.%s do not start: their container is not ready on this node; is berthd running?", job_id, step_id);
        return fail_task(msg);
    }
    char *save = NULL;
    for (char *line = strtok_r(tf.text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "workdir=", 8) == 0)
            tf.workdir = line + 8;
        else if (strncmp(line, "container=", 10) == 0)
            tf.container = line + 10;
        else if (strncmp(line, "env=", 4) == 0 || strncmp(line, "envdefault=", 11) == 0) {
            /* env=: the container's value; envdefault=: the container's, unless the task has its own */
            int keep = line[3] != '=';
            char *name = line + (keep ? 11 : 4);
            char *eq = strchr(name, '=');
            if (eq == NULL)
                continue;
            *eq = '\0';
            if (spank_setenv(sp, name, eq + 1, !keep) != ESPANK_SUCCESS && !keep)
                slurm_info("berth: could not set %s for the task", name);
        } else if (strncmp(line, "unset=", 6) == 0) {
            /* the host's locale, which the image does not have and the step did not ask for */
            (void)spank_unsetenv(sp, line + 6);
        }
    }
    long pid = tf.pid;
    const char *workdir = tf.workdir, *container = tf.container;
    if (pid <= 1 || tf.start == 0 || start_time(pid) != tf.start) {
        snprintf(msg, sizeof msg, "berth: the tasks of step %s.%s do not start: container %s is no longer running (pid %ld); the job's containers are gone", job_id, step_id, container, pid);
        return fail_task(msg);
    }
    if (step_confinement.nfilters == 0 || step_confinement.pid != pid) {
        snprintf(msg, sizeof msg, "berth: the tasks of step %s.%s do not start: the confinement of container %s (pid %ld) was not copied at the step's start", job_id, step_id, container, pid);
        return fail_task(msg);
    }
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL)
        snprintf(cwd, sizeof cwd, "/");
    /* slurmstepd changes to srun's directory (cwd) again right after this hook, as the user,
     * in the container's file system; when that fails it goes to /tmp, and when /tmp is
     * missing too, the task dies. --container-workdir is applied once more in task_init, as the
     * user, just before the exec. Both are looked at before anything is joined. */
    snprintf(task_workdir, sizeof task_workdir, "%s", workdir);
    int quiet_chdir = 0;
    if (workdir[0] && !dir_in_container(pid, workdir)) {
        snprintf(msg, sizeof msg, "berth: the tasks of step %s.%s do not start: --container-workdir %s does not exist in container %s; give a directory the image has",
                 job_id, step_id, workdir, container);
        return fail_task(msg);
    }
    if (!dir_in_container(pid, cwd)) {
        if (!dir_in_container(pid, "/tmp")) {
            snprintf(msg, sizeof msg, "berth: the tasks of step %s.%s do not start: their directory %s does not exist in container %s%s; run srun from a directory the image has (srun --chdir=/ ...)",
                     job_id, step_id, cwd, container, strcmp(cwd, "/tmp") == 0 ? "" : ", nor does /tmp, where Slurm would start them instead");
            return fail_task(msg);
        }
        quiet_chdir = 1;
        if (!workdir[0])
            snprintf(task_workdir, sizeof task_workdir, "/");
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        slurm_error("berth: cannot set no_new_privs: %s", strerror(errno));
        return -1;
    }
    /* the network and UTS namespaces only when the container has its own (--container-unshare);
     * else the tasks keep the host's, as pyxis's do. Before the mount namespace, whose /proc is
     * the container's. */
    if ((tf.net && join_ns(pid, "net", CLONE_NEWNET) != 0) || (tf.uts && join_ns(pid, "uts", CLONE_NEWUTS) != 0))
        return -1;
    if (join_ns(pid, "ipc", CLONE_NEWIPC) != 0 || join_ns(pid, "mnt", CLONE_NEWNS) != 0)
        return -1;
    const char *dir = workdir[0] ? workdir : cwd;
    if (chdir(dir) != 0 && chdir("/") != 0)
        return -1;
    /* last, as it takes away what the joins above need: the container's bounding set and
     * seccomp filters. What slurmstepd does after this hook (setgroups, set*id, the tty,
     * dup2, chdir, the TaskProlog, execve) is all allowed by Docker's profile. */
    char err[512];
    if (berth_confine_apply(&step_confinement, err, sizeof err) != 0) {
        slurm_error("berth: cannot confine the task as container %s is: %s; the task does not start", container, err);
        return -1;
    }
    if (quiet_chdir) {
        if (local_task(sp) <= 0) {
            snprintf(msg, sizeof msg, "berth: %s does not exist in container %s; the task starts in %s", cwd, container, workdir[0] ? workdir : "/");
            say(msg);
        }
        /* slurmstepd's own "couldn't chdir ... going to /tmp instead" is not what happens (the
         * task goes on to its directory in task_init): it goes to slurmd's log only, until
         * slurmstepd gives the task its own stderr, before the task runs */
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDERR_FILENO);
            close(null);
        }
    }
    return 0;
}

int berth_tasks_user_init(spank_t sp)
{
    if (task_failure[0] != '\0') {
        if (local_task(sp) <= 0)
            say(task_failure);
        _exit(1);
    }
    uint32_t task = 1;
    if (step_joins && step_warning[0] != '\0' && spank_get_item(sp, S_TASK_GLOBAL_ID, &task) == ESPANK_SUCCESS && task == 0) {
        size_t n = strlen(step_warning);
        fprintf(stderr, "%s%s", step_warning, n && step_warning[n - 1] == '\n' ? "" : "\n");
        fflush(stderr);
    }
    if (!step_joins || task_workdir[0] == '\0')
        return 0;
    if (chdir(task_workdir) != 0) {
        slurm_error("berth: cannot enter the working directory %s in the container: %s", task_workdir, strerror(errno));
        return -1;
    }
    return 0;
}

void berth_tasks_step_epilog(spank_t sp, const struct berth_args *a)
{
    (void)sp;
    if (!step_joins)
        return;
    int unspool = 0;
    if (step_spooled) {
        step_spooled = 0;
        if (spool_step(a, 1) == 0) {
            step_joins = 0;
            berth_confine_free(&step_confinement);
            return;
        }
        /* berthd is told as for any step (it has read the spooled start by the time it answers),
         * and the spooled start goes then: it must not be read again */
        unspool = 1;
    }
    const char *node = getenv("SLURMD_NODENAME");
    char status[16] = "";
    if (step_tasks_ended > 0)
        snprintf(status, sizeof status, "%d", step_status);
    const char *env[] = { "SLURM_JOB_ID", job_id, "SLURM_STEP_ID", step_id, "SLURMD_NODENAME", node ? node : "", "BERTH_RUN_DIR", a->run_dir,
                          "BERTH_STEP_WAIT_STATUS", status, NULL };
    static char out[BERTH_OUT_MAX];
    if (berth_run_hook(a, "step-epilog", env, out, sizeof out) != 0)
        slurm_error("%s", out);
    char spooled[PATH_MAX];
    if (unspool && snprintf(spooled, sizeof spooled, "%s/%s/step-spool/%s.%s", a->run_dir, node ? node : "", job_id, step_id) < (int)sizeof spooled)
        unlink(spooled);
    step_joins = 0;
    berth_confine_free(&step_confinement);
}

/*
 * slurmstepd, after each task of the step ended: keep the first failure, for accounting, and
 * once the node's last task has ended tell berthd at once. It must be now: at
 * slurm_spank_exit the step's process tracking (proctrack) kills what is left of the step,
 * this hook's child included. slurmstepd reports the exits to srun after this returns.
 */
void berth_tasks_exited(spank_t sp, const struct berth_args *a)
{
    int status = 0;
    if (!step_joins || spank_get_item(sp, S_TASK_EXIT_STATUS, &status) != ESPANK_SUCCESS)
        return;
    if (step_tasks_ended == 0 || step_status == 0)
        step_status = status;
    step_tasks_ended++;
    uint32_t local = 0;
    if (spank_get_item(sp, S_JOB_LOCAL_TASK_COUNT, &local) == ESPANK_SUCCESS && (uint32_t)step_tasks_ended >= local)
        berth_tasks_step_epilog(sp, a);
}
