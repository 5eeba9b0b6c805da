/* What a failure does (services/cli/hook-faults.ts: the drain of the node), and which of
 * berthd's answers the Node hook asks again (hook-retry.ts, agent-client.ts). */
#define _GNU_SOURCE /* strcasestr */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "berth_faults.h"
#include "berth_hook.h"

#define SLURM_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SCONTROL_TIMEOUT_S 10

/* drainReason(): berth and the cause first, white space as single spaces, at most 250 bytes */
void drain_reason(const char *code, const char *reason, char *out, size_t size)
{
    static const struct { const char *code, *cause; } causes[] = BERTH_FAULT_CAUSES;
    const char *cause = BERTH_FAULT_DEFAULT_CAUSE;
    for (size_t i = 0; i < sizeof causes / sizeof causes[0]; i++)
        if (strcmp(causes[i].code, code) == 0)
            cause = causes[i].cause;
    int o = snprintf(out, size, "berth: %s: ", cause);
    int space = 0;
    for (const char *c = reason; *c && o + 1 < (int)size && o < 250; c++) {
        if (isspace((unsigned char)*c)) {
            space = 1;
            continue;
        }
        if (space && o + 2 < (int)size && o < 249)
            out[o++] = ' ';
        space = 0;
        if (o < 250)
            out[o++] = *c;
    }
    if (space && o < 250 && o + 1 < (int)size)
        out[o++] = ' ';
    while (o > 0 && ((unsigned char)out[o - 1] & 0xc0) == 0xc0)
        o--; /* not half a character */
    out[o] = '\0';
}

/* scontrol ARGS in a child, its stderr on *err_fd (-1: not wanted) */
static pid_t scontrol(const char *arg1, const char *arg2, const char *arg3, const char *arg4, int *err_fd)
{
    int p[2] = { -1, -1 };
    if (err_fd != NULL && pipe(p) != 0)
        p[0] = p[1] = -1;
    pid_t pid = fork();
    if (pid != 0) {
        if (p[1] >= 0)
            close(p[1]);
        if (err_fd != NULL)
            *err_fd = pid > 0 ? p[0] : (p[0] >= 0 ? close(p[0]), -1 : -1);
        return pid;
    }
    const char *path = getenv("PATH");
    char full[4096];
    snprintf(full, sizeof full, "%s%s%s", path ? path : "", path ? ":" : "", SLURM_PATH);
    setenv("PATH", full, 1);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(p[1] >= 0 ? p[1] : null, STDERR_FILENO);
    }
    alarm(SCONTROL_TIMEOUT_S); /* kept across exec: a hung scontrol ends there */
    execlp("scontrol", "scontrol", arg1, arg2, arg3, arg4, (char *)NULL);
    _exit(127);
}

/*
 * drainForNodeFault, in Slurm's hooks only: the node drained and the job's AdminComment set.
 * PROBLEM gets what could not be done, in the Node hook's words ('' when drained).
 */
void drain(const char *node, const char *job, const char *reason, char *problem, size_t size)
{
    const char *ctx = env_or("BERTH_HOOK_CONTEXT", ""), *script = env_or("SLURM_SCRIPT_CONTEXT", "");
    static char out[2048];
    const char *why = NULL;
    out[0] = '\0';
    char nodename[512], state_reason[700], jobid[64], comment[1100];
    snprintf(nodename, sizeof nodename, "nodename=%s", node);
    snprintf(state_reason, sizeof state_reason, "reason=%s", reason);
    if (strcmp(ctx, "slurmstepd") != 0 && strcmp(script, "prolog_slurmd") != 0) {
        why = "the hook was not run by slurmd or slurmstepd"; /* scontrolFor() outside Slurm */
    } else {
        snprintf(jobid, sizeof jobid, "jobid=%s", job);
        snprintf(comment, sizeof comment, "admincomment=%.1000s", reason);
        int fd = -1;
        pid_t a = scontrol("update", nodename, "state=drain", state_reason, &fd);
        pid_t b = scontrol("update", jobid, comment, NULL, NULL);
        size_t n = 0;
        for (ssize_t k; fd >= 0 && (k = read(fd, out + n, sizeof out - 1 - n)) != 0; ) {
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0 || (n += (size_t)k) == sizeof out - 1)
                break;
        }
        out[n] = '\0';
        if (fd >= 0)
            close(fd);
        int status = 0;
        while (a > 0 && waitpid(a, &status, 0) < 0 && errno == EINTR) {
        }
        while (b > 0 && waitpid(b, NULL, 0) < 0 && errno == EINTR) {
        }
        if (a < 0) {
            why = "spawn scontrol EAGAIN";
        } else if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            /* execFile's error: scontrol's stderr trimmed, else its own message */
            char *s = out, *e = out + strlen(out);
            while (*s && isspace((unsigned char)*s)) s++;
            while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
            static char failed_msg[1400];
            if (*s)
                why = s;
            else if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                why = "spawn scontrol ENOENT";
            else {
                snprintf(failed_msg, sizeof failed_msg, "Command failed: scontrol update %s state=drain %s\n", nodename, state_reason);
                why = failed_msg;
            }
        }
    }
    if (problem != NULL && size > 0) {
        if (why != NULL)
            snprintf(problem, size, "could not drain %s with berth's reason (%s); slurmd drains it with \"Prolog error\"", node, why);
        else
            problem[0] = '\0';
    }
}

/* isUnreachable() of agent-client.ts, on an UNAVAILABLE status's details */
int unreachable_details(const char *d)
{
    static const char *const words[] = { "No connection established", "ENOENT", "ECONNREFUSED", "connect", "Connection dropped" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasestr(d, words[i]) != NULL)
            return 1;
    return 0;
}

/* isRetryable() of hook-retry.ts, on berthd's answer */
int retryable(const struct grpc_result *r)
{
    if (r->berth_code[0])
        return strcmp(r->berth_code, "AGENT_UNAVAILABLE") == 0;
    if (r->status == 14 || r->status == 1)
        return 1;
    if (r->status == 13 || r->status == 2) {
        static const char *const words[] = { "RST_STREAM", "ECONNRESET", "EPIPE", "socket hang up", "Connection dropped", "Connection closed", "Connection reset" };
        if (strncmp(r->message, "internal error in berthd", 24) == 0)
            return 0;
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
            if (strcasestr(r->message, words[i]) != NULL)
                return 1;
    }
    return 0;
}

/* BERTH_HOOK_RETRY_SECONDS=0 (retryWindowMs() is 0): the Node hook would not try again */
int no_retry(void)
{
    char t[64];
    if (trim_env("BERTH_HOOK_RETRY_SECONDS", t, sizeof t) != 0 || t[0] == '\0')
        return 0;
    char *end;
    double n = strtod(t, &end);
    return *end == '\0' && isfinite(n) && n >= 0 && floor(n * 1000) == 0;
}

const char *status_name(int code)
{
    static const char *const names[] = { "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
        "DATA_LOSS", "UNAUTHENTICATED" };
    return code >= 0 && code < (int)(sizeof names / sizeof names[0]) ? names[code] : "UNKNOWN";
}

enum answer judge_answer(const struct grpc_result *r, const char *socket_path, char *reason, size_t size, const char **code, int *job_fault)
{
    *job_fault = 0;
    switch (r->outcome) {
    case GRPC_UNREACHABLE:
        return ANSWER_HAND_OVER; /* nothing was sent */
    case GRPC_CUT:
        if (!no_retry())
            return ANSWER_HAND_OVER;
        snprintf(reason, size, "berthd on %s is not reachable at %s (%s); is berthd running? (systemctl status berthd, or scripts/sandbox status)", node, socket_path, r->error);
        *code = "AGENT_UNAVAILABLE";
        return ANSWER_FAILED;
    case GRPC_TIMEOUT:
        snprintf(reason, size, "berthd on %s did not answer in time (%s)", node, r->error);
        *code = "TIMEOUT";
        return ANSWER_FAILED;
    case GRPC_ANSWERED:
        break;
    }
    if (r->status == 0)
        return ANSWER_OK;
    if (retryable(r) && !no_retry())
        return ANSWER_HAND_OVER;
    /* describeGrpcError() of agent-client.ts, hookFailure() of hook-faults.ts: unreachable
     * first, then a deadline whatever berthd's code, then berthd's own message */
    int unreachable = r->status == 14 && unreachable_details(r->message);
    *code = r->berth_code[0] ? r->berth_code : unreachable ? "AGENT_UNAVAILABLE" : r->status == 4 ? "TIMEOUT" : "UNKNOWN";
    if (unreachable)
        snprintf(reason, size, "berthd on %s is not reachable at %s (%s); is berthd running? (systemctl status berthd, or scripts/sandbox status)", node, socket_path, r->message);
    else if (r->status == 4)
        snprintf(reason, size, "berthd on %s did not answer in time (%s)", node, r->message);
    else if (r->message[0])
        snprintf(reason, size, "%s", r->message);
    else
        snprintf(reason, size, "%d %s: ", r->status, status_name(r->status)); /* grpc-js's message without details */
    *job_fault = strcmp(r->fault, "job") == 0;
    return ANSWER_FAILED;
}
