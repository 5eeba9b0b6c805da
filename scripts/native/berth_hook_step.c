/*
 * The step hooks, step-prolog and step-epilog (berth_hook.h step_hook): StepPrologue and
 * StepEpilogue as services/cli/hook.ts stepPrologueRequest and stepEpilogueRequest make them,
 * and berthd's answer as the Node hook gives it (berth-hook.c says how).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "berth_hook.h"
#include "berth_options.h"
#include "berth_utf8.h"

static int step_prologue_request(struct pb_buf *b)
{
    uint64_t uid, gid;
    char image[4096], requested[4096];
    if (uint32_env("SLURM_JOB_UID", &uid) != 0 || uint32_env("SLURM_JOB_GID", &gid) != 0)
        return -1;
    if (trim_env(BERTH_VAR_IMAGE, image, sizeof image) != 0 || trim_env(BERTH_VAR_IMAGE "_REQUESTED", requested, sizeof requested) != 0)
        return -1;
    const char *user = env_or("SLURM_JOB_USER", "");
    if (!utf8_ok(user) || !utf8_ok(image) || !utf8_ok(requested))
        return -1;
    pb_string(b, 1, env_or("SLURM_JOB_ID", ""));
    pb_string(b, 2, env_or("SLURM_STEP_ID", ""));
    pb_uint(b, 3, uid);
    pb_uint(b, 4, gid);
    pb_string(b, 5, user);
    pb_string(b, 6, image);
    pb_string(b, 7, requested);
    struct pb_buf o = { 0 };
    int rc = container_options(&o, "");
    pb_message(b, 8, &o);
    pb_free(&o);
    if (rc != 0)
        return -1;
    /* BERTH_STEP_ARGV: the arguments joined by \x1f; '' is no argument at all */
    const char *argv = env_or("BERTH_STEP_ARGV", "");
    if (!utf8_ok(argv))
        return -1;
    if (*argv != '\0') {
        for (const char *a = argv; a != NULL; ) {
            const char *sep = strchr(a, '\x1f');
            size_t len = sep ? (size_t)(sep - a) : strlen(a);
            if (len > 0 || a != argv)
                pb_bytes(b, 9, a, len);
            a = sep ? sep + 1 : NULL;
        }
    }
    return b->failed ? -1 : 0;
}

/* the name os.constants.signals gives a signal number first (services/shared/wait-status.ts) */
static const char *signal_name(int sig, char *buf, size_t size)
{
    static const char *const names[] = {
        NULL, "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1",
        "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP",
        "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
    };
    if (sig > 0 && sig < (int)(sizeof names / sizeof names[0]))
        return names[sig];
    snprintf(buf, size, "SIG%d", sig);
    return buf;
}

static int step_epilogue_request(struct pb_buf *b)
{
    pb_string(b, 1, env_or("SLURM_JOB_ID", ""));
    pb_string(b, 2, env_or("SLURM_STEP_ID", ""));
    char t[64];
    if (trim_env("BERTH_STEP_WAIT_STATUS", t, sizeof t) != 0)
        return -1;
    const char *digits = t[0] == '-' ? t + 1 : t;
    if (*digits == '\0' || strspn(digits, "0123456789") != strlen(digits)) {
        pb_uint(b, 3, 0);
        pb_int32(b, 4, 0);
        pb_string(b, 5, "");
        return b->failed ? -1 : 0;
    }
    if (strlen(digits) > 15)
        return -1; /* past what a double holds exactly: the Node hook reads it */
    long long v = strtoll(t, NULL, 10);
    int32_t status = (int32_t)(uint32_t)((unsigned long long)v & 0xffffffffu); /* ToInt32 */
    int sig = status & 0x7f;
    char buf[16];
    pb_uint(b, 3, 1);
    pb_int32(b, 4, sig == 0 ? (status >> 8) & 0xff : 128 + sig);
    pb_string(b, 5, sig == 0 ? "" : signal_name(sig, buf, sizeof buf));
    return b->failed ? -1 : 0;
}

/* "job J step S on NODE", the head of a failure's line */
static char where[512];

/* The Node hook's failure: its line on stderr; a step prologue's node fault drains the node. */
static int failed(const char *reason, const char *code, int job_fault)
{
    fprintf(stderr, "berth: %s: %s\n", where, reason);
    if (strcmp(kind, "step-prolog") == 0 && !job_fault) {
        static char text[8192], why[600];
        snprintf(text, sizeof text, "%s: %s", where, reason);
        drain_reason(code, text, why, sizeof why);
        drain(node, job_id, why, NULL, 0);
    }
    return 1;
}

static void print_warning(const uint8_t *p, size_t n, void *ctx)
{
    (void)ctx;
    fwrite(p, 1, n, stdout);
    fputc('\n', stdout);
}

/* step-prolog (PROLOG 1) or step-epilog: the request, berthd's answer, the exit status */
int step_hook(int prolog)
{
    job_id = env_or("SLURM_JOB_ID", "");
    const char *step = env_or("SLURM_STEP_ID", "");
    /* not root (the user socket wants munge), or ids the Node hook refuses: it says why */
    if (geteuid() != 0 || getuid() != 0 || !matches(job_id, 0) || !matches(step, 1))
        return fallback();
    char socket_path[4096];
    if (target(socket_path, sizeof socket_path) != 0)
        return fallback();
    snprintf(where, sizeof where, "job %s step %s on %s", job_id, step, node);

    struct pb_buf req = { 0 };
    if ((prolog ? step_prologue_request(&req) : step_epilogue_request(&req)) != 0) {
        pb_free(&req);
        return fallback();
    }
    /* secondsFromEnv(BERTH_PROLOG_TIMEOUT_SECONDS, 600 s) of hook-retry.ts; the epilogue's is fixed */
    long timeout_ms = prolog ? timeout_env("BERTH_PROLOG_TIMEOUT_SECONDS", 600000) : 120000;
    if (timeout_ms < 0)
        return fallback(); /* a timeout of 0 ms: as odd as the Node hook makes it */
    struct grpc_result r;
    grpc_unary(socket_path, prolog ? SERVICE "StepPrologue" : SERVICE "StepEpilogue", req.data, req.len, timeout_ms, &r);
    pb_free(&req);

    static char reason[16384];
    const char *code = NULL;
    int job_fault;
    switch (judge_answer(&r, socket_path, reason, sizeof reason, &code, &job_fault)) {
    case ANSWER_OK: {
        int rc = 0;
        if (prolog && pb_each_bytes(r.body, r.body_len, 5, print_warning, NULL) != 0)
            rc = failed("berthd's answer could not be read (a malformed StepPrologueResponse)", "UNKNOWN", 0);
        free(r.body);
        fflush(stdout);
        return rc;
    }
    case ANSWER_HAND_OVER:
        return fallback();
    case ANSWER_FAILED:
        break;
    }
    return failed(reason, code, job_fault);
}
