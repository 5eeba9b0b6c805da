/*
 * The job's prolog and epilog in slurmd (berth_hook.h job_prologue, job_epilogue): JobPrologue
 * and JobEpilogue as services/cli/hook.ts runHook('prolog'|'epilog') sends them, and their
 * answers as it gives them (berth-hook.c says what goes to the Node hook).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "berth_hook.h"
#include "berth_options.h"
#include "berth_utf8.h"

/* containerImage(env) of slurm-env.ts, untrimmed: the plugin's SPANK_ variable, else Slurm's own for the option */
static const char *container_image(void)
{
    const char *v = getenv("SPANK_" BERTH_VAR_IMAGE);
    return v != NULL ? v : env_or("SPANK__SLURM_SPANK_OPTION_berth_container_image", "");
}

/* containerImage(env) of slurm-env.ts is '' */
int no_container_image(void)
{
    const char *v = container_image();
    char t[4096];
    return trim(v, strlen(v), t, sizeof t) == 0 && t[0] == '\0';
}

/* hasStepFiles(env) of slurm-env.ts: task files of the job's container steps on this node */
int has_step_files(void)
{
    const char *job = env_or("SLURM_JOB_ID", ""), *n = env_or("SLURMD_NODENAME", ""), *run_dir = env_or("BERTH_RUN_DIR", "");
    if (!matches(job, 0) || *n == '\0')
        return 0;
    char dir[4096], prefix[32];
    snprintf(dir, sizeof dir, "%s/%s/tasks", *run_dir ? run_dir : "/run/berth", n);
    snprintf(prefix, sizeof prefix, "%s.", job);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d)) != NULL; )
        found = strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return found;
}

/*
 * What the job's prologue and epilogue ask berthd for: the job (job_id), the node and its
 * admin socket (target), the job's image trimmed into IMAGE; -1 where the Node hook answers
 * (not root: the user socket wants munge; a malformed job id; an image this does not trim).
 */
static int job_target(char *socket_path, size_t socket_size, char *image, size_t image_size)
{
    job_id = env_or("SLURM_JOB_ID", "");
    const char *v = container_image();
    if (geteuid() != 0 || getuid() != 0 || !matches(job_id, 0) || target(socket_path, socket_size) != 0
        || trim(v, strlen(v), image, image_size) != 0)
        return -1;
    return 0;
}

/*
 * The job's epilogue (runHook('epilog') of hook.ts): done, or berthd's refusal on stderr and
 * exit 1. berthd away, recovering, cut off or too slow: the Node hook, which retries and then
 * leaves the epilog in the spool for berthd (hook-retry.ts epilogueOrSpool); JobEpilogue is
 * idempotent per job id, so its asking again is harmless. After a deadline it gets one second
 * (its own deadline would have spooled at once).
 */
int job_epilogue(void)
{
    char socket_path[4096], image[4096];
    /* --container-save: its image goes in the request of the job's first node only, by the
     * expanded node list (hook.ts saveOnNode), which the Node hook reads */
    char save[8];
    if (job_target(socket_path, sizeof socket_path, image, sizeof image) != 0
        || trim_env("SPANK_" BERTH_VAR_SAVE, save, sizeof save) != 0 || save[0] != '\0')
        return fallback();
    long timeout_ms = timeout_env("BERTH_EPILOG_TIMEOUT_SECONDS", 300000);
    if (timeout_ms < 0)
        return fallback();
    struct pb_buf req = { 0 };
    pb_string(&req, 1, job_id);
    if (req.failed)
        return fallback();
    struct grpc_result r;
    grpc_unary(socket_path, SERVICE "JobEpilogue", req.data, req.len, timeout_ms, &r);
    pb_free(&req);
    free(r.body);
    if (r.outcome == GRPC_TIMEOUT) {
        setenv("BERTH_EPILOG_TIMEOUT_SECONDS", "1", 1);
        return fallback();
    }
    if (r.outcome != GRPC_ANSWERED || (r.status != 0 && retryable(&r)) || (r.status == 4 && !r.berth_code[0])
        || (r.status == 14 && unreachable_details(r.message)))
        return fallback();
    if (r.status == 0)
        return 0;
    static char quoted[4200];
    snprintf(quoted, sizeof quoted, "'%s'", image);
    int named = strstr(r.message, quoted) != NULL;
    char bare[64];
    snprintf(bare, sizeof bare, "%d %s: ", r.status, status_name(r.status)); /* grpc-js's message without details */
    fprintf(stderr, "berth epilog: job %s on %s%s%s: %s\n", job_id, node, named ? "" : ", image ", named ? "" : quoted, r.message[0] ? r.message : bare);
    return 1;
}

static int job_prologue_request(struct pb_buf *b, const char *image)
{
    uint64_t uid, gid;
    char requested[4096];
    double cpus, memory_bytes, num_nodes;
    if (uint32_env("SLURM_JOB_UID", &uid) != 0 || uint32_env("SLURM_JOB_GID", &gid) != 0)
        return -1; /* the Node hook says why and drains the node */
    if (trim_env("SPANK_" BERTH_VAR_IMAGE "_REQUESTED", requested, sizeof requested) != 0 || allocation(&cpus, &memory_bytes) != 0
        || num_env("SLURM_JOB_NUM_NODES", &num_nodes) != 0 || num_nodes > 4294967295.0)
        return -1;
    const char *list = getenv("SLURM_JOB_NODELIST");
    if (list == NULL)
        list = env_or("SLURM_NODELIST", "");
    const char *user = env_or("SLURM_JOB_USER", ""), *work_dir = env_or("SLURM_JOB_WORK_DIR", ""), *partition = env_or("SLURM_JOB_PARTITION", ""),
               *account = env_or("SLURM_JOB_ACCOUNT", "");
    const char *const texts[] = { user, image, requested, work_dir, list, partition, account };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (!utf8_ok(texts[i]))
            return -1;
    pb_string(b, 1, env_or("SLURM_JOB_ID", ""));
    pb_uint(b, 2, uid);
    pb_uint(b, 3, gid);
    pb_string(b, 4, user);
    pb_string(b, 5, image);
    pb_string(b, 6, work_dir);
    pb_uint(b, 7, (uint64_t)cpus);
    pb_uint(b, 8, (uint64_t)memory_bytes);
    pb_string(b, 9, list);
    pb_uint(b, 10, (uint64_t)num_nodes);
    pb_string(b, 11, partition);
    pb_string(b, 12, account);
    pb_string(b, 13, requested);
    struct pb_buf o = { 0 };
    int rc = container_options(&o, "SPANK_");
    pb_message(b, 14, &o);
    pb_free(&o);
    return rc != 0 || b->failed ? -1 : 0;
}

/* prologFailed() of hook.ts: a job fault exits 0, the node in service; a node fault drains the node and exits 1 */
static int prolog_failed(const char *image, const char *reason, const char *code, int job_fault)
{
    static char quoted[4200], line[24000];
    snprintf(quoted, sizeof quoted, "'%s'", image);
    int named = strstr(reason, quoted) != NULL;
    snprintf(line, sizeof line, "job %s on %s%s%s: %s", job_id, node, named ? "" : ", image ", named ? "" : quoted, reason);
    if (job_fault) {
        fprintf(stderr, "berth prolog: %s [a job fault (%s): the job's steps fail with this reason; the node stays in service]\n", line, code);
        return 0;
    }
    static char text[17000], why[600], problem[3000];
    char head[64];
    snprintf(head, sizeof head, "job %s: ", job_id);
    snprintf(text, sizeof text, "%s (job %s)", strncmp(reason, head, strlen(head)) == 0 ? reason + strlen(head) : reason, job_id);
    drain_reason(code, text, why, sizeof why);
    drain(node, job_id, why, problem, sizeof problem);
    fprintf(stderr, "berth prolog: %s [a node fault (%s): the node is drained%s%s]\n", line, code, problem[0] ? "; " : "", problem);
    return 1;
}

/*
 * The job's prologue (runHook('prolog') of hook.ts): the same JobPrologueRequest, and its
 * answer as the Node hook gives it: done, exit 0 and nothing said; a job fault's line, exit 0;
 * a node fault's line after draining the node, exit 1 (berthd's refusal, or no answer within
 * BERTH_PROLOG_TIMEOUT_SECONDS). A node fault is not handed over: JobPrologue is not
 * idempotent for a job whose prologue failed (a second one makes the container again), and
 * the Node hook would ask again. What the Node hook would ask again itself goes to it, as it
 * would: berthd not reachable (nothing was sent), recovering (AGENT_UNAVAILABLE, refused
 * before the prologue runs), or the call cut off mid-flight (a repeat shares the run under way,
 * or returns the running container, or makes again the one whose prologue was cut). So does
 * everything it refuses before it asks (a malformed id, SLURM_JOB_UID/GID missing, an option
 * it refuses) and a form of the environment this does not read as it does.
 */
int job_prologue(void)
{
    char socket_path[4096], image[4096];
    if (job_target(socket_path, sizeof socket_path, image, sizeof image) != 0)
        return fallback();
    long timeout_ms = timeout_env("BERTH_PROLOG_TIMEOUT_SECONDS", 600000);
    struct pb_buf req = { 0 };
    if (timeout_ms < 0 || job_prologue_request(&req, image) != 0) {
        pb_free(&req);
        return fallback();
    }
    struct grpc_result r;
    grpc_unary(socket_path, SERVICE "JobPrologue", req.data, req.len, timeout_ms, &r);
    pb_free(&req);
    free(r.body);
    static char reason[16384];
    const char *code = NULL;
    int job_fault;
    switch (judge_answer(&r, socket_path, reason, sizeof reason, &code, &job_fault)) {
    case ANSWER_OK:
        return 0;
    case ANSWER_HAND_OVER:
        return fallback();
    case ANSWER_FAILED:
        break;
    }
    return prolog_failed(image, reason, code, job_fault);
}
