/*
 * berth-hook submit-check: what the SPANK plugin runs, as the user, at an srun in a running job
 * that asks for a container of its own (berth_spank.c submit()), instead of `berth submit-check`
 * and its Node.js start. It sends the variables the command reads (BERTH_*, PYXIS_*,
 * SLURM_JOB_ID) to berthd's SubmitCheck on the node's user socket, with a munge credential
 * made for it, and answers as the command would: berthd's stdout, stderr and exit code, which
 * it computed with the command's own code for this user (services/agent/submit/submit-checker.ts).
 * Whenever berthd does not answer — no socket on this host (an srun on a login node), refused,
 * an error status (an older berthd: UNIMPLEMENTED; recovering, munge refused, ...), cut off,
 * too slow — or munge cannot make a credential, or a variable is not UTF-8, it execs
 * `berth submit-check` with the same environment: never worse than before.
 */
#include <dlfcn.h>
#include <errno.h>
#include <munge.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "berth_grpc.h"
#include "berth_pb.h"
#include "berth_submit_check.h"
#include "berth_utf8.h"

#define METHOD "SubmitCheck"
#define MUNGE_KEY "x-berth-munge"           /* MUNGE_METADATA_KEY of services/shared/proto-names.ts */
#define PAYLOAD "berth.v1/" METHOD ":"      /* mungePayload('SubmitCheck', '') of services/shared/munge.ts */
#define TIMEOUT_MS 30000                    /* the check's registry round trip has 20 s (resolve.ts) */

extern char **environ;

static int fallback(const char *berth)
{
    fflush(stdout);
    fflush(stderr);
    char *args[] = { (char *)berth, "submit-check", NULL };
    execv(berth, args);
    fprintf(stderr, "berth: submit-check: cannot run %s: %s\n", berth, strerror(errno));
    return 1;
}

/* the variables berthd passes on to the check (submit-checker.ts checkedEnv) */
static int wanted(const char *entry)
{
    return strncmp(entry, "BERTH_", 6) == 0 || strncmp(entry, "PYXIS_", 6) == 0 || strncmp(entry, "SLURM_JOB_ID=", 13) == 0;
}

/* SubmitCheckRequest: repeated EnvEntry env = 1 { string name = 1; string value = 2; }; -1 for text that is not UTF-8 */
static int request(struct pb_buf *req)
{
    for (char **e = environ; *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || !wanted(*e))
            continue;
        if (!utf8_ok(*e))
            return -1;
        struct pb_buf entry = { 0 };
        pb_bytes(&entry, 1, *e, (size_t)(eq - *e));
        pb_string(&entry, 2, eq + 1);
        pb_message(req, 1, &entry);
        pb_free(&entry);
    }
    return req->failed ? -1 : 0;
}

/*
 * A munge credential for the call, made by libmunge (loaded when asked for: the step hooks of
 * the same binary run as root without munge); NULL when it cannot be made.
 */
static char *credential(void)
{
    void *lib = dlopen("libmunge.so.2", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL)
        return NULL;
    munge_err_t (*encode)(char **, munge_ctx_t, const void *, int);
    *(void **)&encode = dlsym(lib, "munge_encode");
    char *cred = NULL;
    if (encode == NULL || encode(&cred, NULL, PAYLOAD, (int)strlen(PAYLOAD)) != EMUNGE_SUCCESS) {
        free(cred);
        return NULL;
    }
    return cred;
}

/* RUN_DIR/NODE/user.sock (services/shared/paths.ts agentSockets): the node slurmd names, else this host's short name */
static int user_socket(char *path, size_t size)
{
    char host[256];
    const char *node = getenv("SLURMD_NODENAME");
    if (node == NULL || *node == '\0') {
        if (gethostname(host, sizeof host) != 0)
            return -1;
        host[sizeof host - 1] = '\0';
        host[strcspn(host, ".")] = '\0';
        node = host;
    }
    const char *run_dir = getenv("BERTH_RUN_DIR");
    int n = snprintf(path, size, "%s/%s/user.sock", run_dir && *run_dir ? run_dir : "/run/berth", node);
    return n > 0 && (size_t)n < size && access(path, F_OK) == 0 ? 0 : -1;
}

static void print_to(const uint8_t *p, size_t n, void *f)
{
    fwrite(p, 1, n, f);
}

int submit_check(const char *berth)
{
    char path[4096];
    if (user_socket(path, sizeof path) != 0)
        return fallback(berth);
    struct pb_buf req = { 0 };
    if (request(&req) != 0) {
        pb_free(&req);
        return fallback(berth);
    }
    char *cred = credential();
    if (cred == NULL) {
        pb_free(&req);
        return fallback(berth);
    }
    struct grpc_result r;
    grpc_unary_md(path, "/berth.v1.NodeAgentService/" METHOD, MUNGE_KEY, cred, req.data ? req.data : (const uint8_t *)"", req.len, TIMEOUT_MS, &r);
    free(cred);
    pb_free(&req);
    uint64_t code;
    if (r.outcome != GRPC_ANSWERED || r.status != 0 || pb_last_uint(r.body, r.body_len, 1, &code) != 0 || code > 255) {
        free(r.body);
        return fallback(berth);
    }
    if (pb_each_bytes(r.body, r.body_len, 2, print_to, stdout) != 0 || pb_each_bytes(r.body, r.body_len, 3, print_to, stderr) != 0) {
        free(r.body);
        return fallback(berth); /* nothing printed yet: pb_last_uint read the whole message */
    }
    free(r.body);
    fflush(stdout);
    fflush(stderr);
    return (int)code;
}
