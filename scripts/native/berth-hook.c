/*
 * berth-hook: `berth hook step-prolog|step-epilog` without a Node.js process. The SPANK plugin
 * runs it as root in slurmstepd, once per container step and node (berth_run.c
 * berth_run_hook); it sends the same StepPrologue and StepEpilogue requests as the Node hook
 * (services/cli/hook.ts stepPrologueRequest, stepEpilogueRequest), read from the same
 * variables, over berthd's admin socket (berth_grpc.c), and answers as it does:
 *   berthd's answer OK        the step prologue's warnings on stdout, exit 0
 *   berthd's error answer     `berth: job J step S on NODE: REASON` on stderr, exit 1; a step
 *                             prologue's node fault also drains the node (hook-faults.ts)
 *   berthd did not answer in time: as an error answer, the node's fault (TIMEOUT)
 * and hands everything else to the Node hook, by exec with the same environment, so that the
 * retries through a restart of berthd stay in one place (services/cli/hook-retry.ts):
 *   berthd not reachable (no socket, refused): nothing was sent
 *   berthd said it is recovering (AGENT_UNAVAILABLE), or the call was cut off mid-flight:
 *                             the Node hook retries exactly these, both calls being idempotent
 *                             through them (hook-retry.ts); with BERTH_HOOK_RETRY_SECONDS=0
 *                             (no retry) berth-hook fails them itself
 *   anything the Node hook would refuse before calling (a malformed id or --container-* value,
 *   not root, text that is not UTF-8): it says why, as before
 *
 *
 * For slurmd's prolog and epilog (scripts/slurm/prolog, epilog) it answers the job without a
 * container, as services/cli/main.ts does before it loads anything: exit 0, no Node.js start
 * for the many jobs that are not berth's. The epilog of any other job sends JobEpilogue as
 * the Node hook does (job_epilogue), its prolog JobPrologue (job_prologue): a job fault's line
 * and exit 0, a node fault's drain and exit 1, as hook.ts prologFailed; berthd away,
 * recovering or cut off goes to `berth hook prolog`, which asks again as it would itself.
 *
 * `berth-hook submit-check`, run as the user by the plugin at an srun in a job, is `berth
 * submit-check` answered by berthd's SubmitCheck over the user socket (berth_submit_check.c).
 *
 *   berth-hook [--berth=/usr/local/bin/berth] step-prolog|step-epilog|prolog|epilog|submit-check
 */
#define _GNU_SOURCE /* strcasestr */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "berth_faults.h"
#include "berth_grpc.h"
#include "berth_pb.h"
#include "berth_submit_check.h"
#include "berth_utf8.h"

#define SERVICE "/berth.v1.NodeAgentService/"
#define MAX_MOUNTS 64
#define SLURM_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SCONTROL_TIMEOUT_S 10

static const char *kind;
static const char *berth = "/usr/local/bin/berth";

/* Hands the hook to `berth hook KIND` with this environment; returns only when it cannot. */
static int fallback(void)
{
    fflush(stdout);
    char *args[] = { (char *)berth, "hook", (char *)kind, NULL };
    execv(berth, args);
    fprintf(stderr, "berth: %s: cannot run %s: %s\n", kind, berth, strerror(errno));
    return 1;
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v ? v : dflt;
}

/* ---- the request's values, read as services/shared/container-options.ts reads them ---- */

/*
 * JavaScript's trim() into out: ASCII white space here; a value with other bytes at either
 * end (it may begin or end with Unicode white space, which trim() also takes) gives -1.
 */
static int trim(const char *s, size_t n, char *out, size_t size)
{
    while (n > 0 && strchr(" \t\n\v\f\r", s[0]) != NULL) { s++; n--; }
    while (n > 0 && strchr(" \t\n\v\f\r", s[n - 1]) != NULL) n--;
    if (n > 0 && ((unsigned char)s[0] >= 0x80 || (unsigned char)s[n - 1] >= 0x80))
        return -1;
    if (n >= size)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

static int trim_env(const char *name, char *out, size_t size)
{
    const char *v = env_or(name, "");
    return trim(v, strlen(v), out, size);
}

/* absolute() of container-options.ts: an absolute path without '.' or '..', '//' as '/', no trailing '/' */
static int absolute(const char *p, char *out, size_t size)
{
    if (p[0] != '/' || strchr(p, '\n') != NULL)
        return -1;
    for (const char *c = p; *c; ) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return -1;
        c += len;
        if (*c == '/')
            c++;
    }
    size_t o = 0;
    for (const char *c = p; *c; c++) {
        if (*c == '/' && o > 0 && out[o - 1] == '/')
            continue;
        if (o + 1 >= size)
            return -1;
        out[o++] = *c;
    }
    if (o > 1 && out[o - 1] == '/')
        o--;
    out[o] = '\0';
    return 0;
}

static int reserved(const char *t)
{
    static const char *const under[] = { "/.berth", "/proc", "/sys", "/dev" };
    if (strcmp(t, "/") == 0 || strcmp(t, "/etc/passwd") == 0 || strcmp(t, "/etc/group") == 0)
        return 1;
    for (size_t i = 0; i < sizeof under / sizeof under[0]; i++) {
        size_t n = strlen(under[i]);
        if (strncmp(t, under[i], n) == 0 && (t[n] == '\0' || t[n] == '/'))
            return 1;
    }
    return 0;
}

/* TMPFS_OPTIONS's keys, in its order (the order Node writes them in) */
static const char *const tmpfs_keys[] = { "size", "nr_inodes", "mode" };
enum { N_TMPFS_KEYS = sizeof tmpfs_keys / sizeof tmpfs_keys[0] };

/* TMPFS_OPTIONS's valid: the value of key k is of its form */
static int tmpfs_value_ok(int k, const char *v)
{
    size_t n = strlen(v);
    if (k == 0 || k == 1) { /* size, nr_inodes: [1-9][0-9]{0,15}[kmg]? */
        size_t digits = strspn(v, "0123456789");
        return digits >= 1 && digits <= 16 && v[0] != '0' && (n == digits || (n == digits + 1 && strchr("kmgKMG", v[digits]) != NULL));
    }
    /* mode: 0?[0-7]{3} */
    return (n == 3 || (n == 4 && v[0] == '0')) && strspn(v, "01234567") == n;
}

/* a tmpfs's KEY=VALUE flag into opts[key's index]; -1 where Node's TMPFS_OPTIONS refuse it or a key comes twice */
static int tmpfs_option(const char *flag, char opts[N_TMPFS_KEYS][64])
{
    const char *eq = strchr(flag, '=');
    if (eq == NULL || strlen(flag) >= 64)
        return -1;
    for (int k = 0; k < N_TMPFS_KEYS; k++) {
        if (strlen(tmpfs_keys[k]) != (size_t)(eq - flag) || strncmp(flag, tmpfs_keys[k], (size_t)(eq - flag)) != 0)
            continue;
        if (!tmpfs_value_ok(k, eq + 1))
            return -1;
        if (opts[k][0] != '\0' && strcmp(opts[k], flag) != 0)
            return -1;
        snprintf(opts[k], 64, "%s", flag);
        return 0;
    }
    return -1;
}

/* mountFlags(): FLAGS joined with '+': ro or rw, and for a bind one propagation (rbind allowed
 * and meaningless); a tmpfs also takes nosuid and nodev (it is both anyway) and its KEY=VALUE
 * options (tmpfs_option, into opts); -1 for what Node refuses */
static int mount_flags(const char *text, int tmpfs, int *read_only, const char **propagation, char opts[N_TMPFS_KEYS][64])
{
    static const char *const props[] = { "private", "rprivate", "slave", "rslave" };
    *read_only = -1;
    *propagation = "";
    memset(opts, 0, sizeof(char[N_TMPFS_KEYS][64]));
    char buf[256];
    if (strlen(text) >= sizeof buf)
        return -1;
    snprintf(buf, sizeof buf, "%s", text);
    for (char *flag = buf, *next; flag != NULL; flag = next) {
        char *plus = strchr(flag, '+');
        next = plus ? plus + 1 : NULL;
        if (plus)
            *plus = '\0';
        if (strcmp(flag, "ro") == 0 || strcmp(flag, "rw") == 0) {
            int ro = strcmp(flag, "ro") == 0;
            if (*read_only >= 0 && *read_only != ro)
                return -1;
            *read_only = ro;
            continue;
        }
        if (tmpfs && (strcmp(flag, "nosuid") == 0 || strcmp(flag, "nodev") == 0))
            continue;
        if (tmpfs && strchr(flag, '=') != NULL) {
            if (tmpfs_option(flag, opts) != 0)
                return -1;
            continue;
        }
        if (tmpfs || strcmp(flag, "rbind") == 0) {
            if (tmpfs)
                return -1;
            continue;
        }
        const char *p = NULL;
        for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
            if (strcmp(flag, props[i]) == 0)
                p = props[i];
        if (p == NULL || (**propagation && strcmp(*propagation, p) != 0))
            return -1; /* '' , unknown, refused, or a second propagation */
        *propagation = p;
    }
    if (*read_only < 0)
        *read_only = 0;
    return 0;
}

/* parseMounts: Mount messages (field 1 of ContainerOptions) into o; -1 where Node refuses the text */
static int mounts(const char *text, struct pb_buf *o)
{
    static char t[65536];
    if (trim(text, strlen(text), t, sizeof t) != 0)
        return -1;
    if (t[0] == '\0')
        return 0;
    static char targets[MAX_MOUNTS][4096];
    int count = 0;
    for (char *raw = t; raw != NULL; ) {
        char *comma = strchr(raw, ',');
        size_t len = comma ? (size_t)(comma - raw) : strlen(raw);
        char spec[8192], src[4096], dst[4096];
        if (count == MAX_MOUNTS || trim(raw, len, spec, sizeof spec) != 0 || spec[0] == '\0')
            return -1;
        char *f[4] = { spec, NULL, NULL, NULL };
        int nf = 1;
        for (char *c = spec; *c; c++) {
            if (*c != ':')
                continue;
            if (nf == 3)
                return -1; /* too many ':' */
            *c = '\0';
            f[nf++] = c + 1;
        }
        for (int i = 1; i < nf; i++)
            if (f[i][0] == '\0')
                return -1;
        int tmpfs = strcmp(f[0], "tmpfs") == 0, read_only;
        const char *propagation;
        char opts[N_TMPFS_KEYS][64];
        if ((tmpfs && nf < 2) || mount_flags(nf == 3 ? f[2] : "rw", tmpfs, &read_only, &propagation, opts) != 0)
            return -1;
        if (tmpfs)
            snprintf(src, sizeof src, "tmpfs");
        else if (absolute(f[0], src, sizeof src) != 0)
            return -1;
        if (absolute(nf > 1 ? f[1] : f[0], dst, sizeof dst) != 0 || reserved(dst))
            return -1;
        for (int i = 0; i < count; i++)
            if (strcmp(targets[i], dst) == 0)
                return -1;
        snprintf(targets[count++], sizeof targets[0], "%s", dst);
        struct pb_buf m = { 0 };
        pb_string(&m, 1, src);
        pb_string(&m, 2, dst);
        pb_uint(&m, 3, (unsigned)read_only);
        pb_string(&m, 4, propagation);
        for (int k = 0; k < N_TMPFS_KEYS; k++)
            if (opts[k][0] != '\0')
                pb_string(&m, 5, opts[k]);
        pb_message(o, 1, &m);
        pb_free(&m);
        raw = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* parseEnvNames: env_names (field 3), each once, in order */
static int env_names(const char *text, struct pb_buf *o)
{
    static char t[65536];
    if (trim(text, strlen(text), t, sizeof t) != 0)
        return -1;
    if (t[0] == '\0')
        return 0;
    static char seen[65536];
    size_t seen_len = 0;
    seen[0] = '\0';
    for (const char *raw = text; raw != NULL; ) {
        const char *comma = strchr(raw, ',');
        size_t len = comma ? (size_t)(comma - raw) : strlen(raw);
        char name[4096];
        if (trim(raw, len, name, sizeof name) != 0 || name[0] == '\0')
            return -1;
        if (!(isalpha((unsigned char)name[0]) || name[0] == '_'))
            return -1;
        for (const char *c = name; *c; c++)
            if (!(isalnum((unsigned char)*c) || *c == '_') || (unsigned char)*c >= 0x80)
                return -1;
        char key[4100];
        snprintf(key, sizeof key, ",%s,", name);
        if (strstr(seen, key) == NULL) {
            pb_string(o, 3, name);
            size_t k = strlen(name);
            if (seen_len + k + 2 >= sizeof seen)
                return -1;
            if (seen_len == 0)
                seen[seen_len++] = ',';
            memcpy(seen + seen_len, name, k);
            seen_len += k;
            seen[seen_len++] = ',';
            seen[seen_len] = '\0';
        }
        raw = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* parseToggle as the Toggle enum: 0 unspecified, 1 on, 2 off; -1 not a yes/no value */
static int toggle(const char *name)
{
    char t[16];
    if (trim_env(name, t, sizeof t) != 0)
        return -1;
    for (char *c = t; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    static const char *const on[] = { "1", "true", "yes", "on", "y" }, *const off[] = { "0", "false", "no", "off", "n" };
    if (t[0] == '\0')
        return 0;
    for (int i = 0; i < 5; i++) {
        if (strcmp(t, on[i]) == 0) return 1;
        if (strcmp(t, off[i]) == 0) return 2;
    }
    return -1;
}

/* PREFIX + NAME: the step hooks read BERTH_CONTAINER_*, the job's prolog SPANK_BERTH_CONTAINER_* */
static const char *option_var(const char *prefix, const char *name)
{
    static char buf[8][128];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, sizeof buf[0], "%s%s", prefix, name);
    return b;
}

/* parseUnshare: NS[,NS...] of net, ipc, uts, sent in that order, each once; -1 for anything else */
static int unshare(const char *name, struct pb_buf *o)
{
    char t[256];
    if (trim_env(name, t, sizeof t) != 0)
        return -1;
    if (t[0] == '\0')
        return 0;
    static const char *const known[] = { "net", "ipc", "uts" };
    int given[3] = { 0, 0, 0 };
    for (const char *raw = t; raw != NULL; ) {
        const char *comma = strchr(raw, ',');
        size_t len = comma ? (size_t)(comma - raw) : strlen(raw);
        char ns[16];
        if (trim(raw, len, ns, sizeof ns) != 0 || ns[0] == '\0')
            return -1;
        int i = 0;
        while (i < 3 && strcmp(ns, known[i]) != 0)
            i++;
        if (i == 3)
            return -1;
        given[i] = 1;
        raw = comma ? comma + 1 : NULL;
    }
    for (int i = 0; i < 3; i++)
        if (given[i])
            pb_string(o, 8, known[i]);
    return 0;
}

/* optionsFromEnv(env, PREFIX) as the ContainerOptions message */
static int options(struct pb_buf *o, const char *prefix)
{
    static const char *const vars[] = { "BERTH_CONTAINER_MOUNTS", "BERTH_CONTAINER_WORKDIR", "BERTH_CONTAINER_ENV", "BERTH_CONTAINER_NAME" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (!utf8_ok(env_or(option_var(prefix, vars[i]), "")))
            return -1;
    char workdir[4096] = "", wd[4096], name[128];
    if (mounts(env_or(option_var(prefix, "BERTH_CONTAINER_MOUNTS"), ""), o) != 0)
        return -1;
    if (trim_env(option_var(prefix, "BERTH_CONTAINER_WORKDIR"), wd, sizeof wd) != 0 || (wd[0] && absolute(wd, workdir, sizeof workdir) != 0))
        return -1;
    pb_string(o, 2, workdir);
    if (env_names(env_or(option_var(prefix, "BERTH_CONTAINER_ENV"), ""), o) != 0)
        return -1;
    if (trim_env(option_var(prefix, "BERTH_CONTAINER_NAME"), name, sizeof name) != 0)
        return -1;
    /* NAME[:FLAG], pyxis's flags; auto is the default and not sent */
    const char *name_flag = "";
    char *colon = strchr(name, ':');
    if (colon != NULL) {
        *colon = '\0';
        const char *flag = colon + 1;
        if (strcmp(flag, "create") == 0 || strcmp(flag, "exec") == 0 || strcmp(flag, "no_exec") == 0)
            name_flag = flag;
        else if (strcmp(flag, "auto") != 0)
            return -1;
        if (name[0] == '\0')
            return -1;
    }
    size_t n = strlen(name);
    if (n > 64 || (n > 0 && !isalnum((unsigned char)name[0])))
        return -1;
    for (const char *c = name; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_' || *c == '.' || *c == '-') || (unsigned char)*c >= 0x80)
            return -1;
    pb_string(o, 4, name);
    pb_string(o, 7, name_flag);
    int home = toggle(option_var(prefix, "BERTH_CONTAINER_MOUNT_HOME")), ro = toggle(option_var(prefix, "BERTH_CONTAINER_READONLY"));
    if (home < 0 || ro < 0)
        return -1;
    pb_uint(o, 5, (unsigned)home);
    pb_uint(o, 6, (unsigned)ro);
    return unshare(option_var(prefix, "BERTH_CONTAINER_UNSHARE"), o);
}

/* Number(SLURM_JOB_UID) as a uint32, when it is plain digits */
static int uint32_env(const char *name, uint64_t *v)
{
    const char *s = env_or(name, "");
    if (*s == '\0' || strlen(s) > 10 || strspn(s, "0123456789") != strlen(s))
        return -1;
    *v = strtoull(s, NULL, 10);
    return *v <= UINT32_MAX ? 0 : -1;
}

static int step_prologue_request(struct pb_buf *b)
{
    uint64_t uid, gid;
    char image[4096], requested[4096];
    if (uint32_env("SLURM_JOB_UID", &uid) != 0 || uint32_env("SLURM_JOB_GID", &gid) != 0)
        return -1;
    if (trim_env("BERTH_CONTAINER_IMAGE", image, sizeof image) != 0 || trim_env("BERTH_CONTAINER_IMAGE_REQUESTED", requested, sizeof requested) != 0)
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
    int rc = options(&o, "");
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

/* ---- what a failure does (services/cli/hook-faults.ts) ---- */

/* drainReason(): berth and the cause first, white space as single spaces, at most 250 bytes */
static void drain_reason(const char *code, const char *reason, char *out, size_t size)
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
static void drain(const char *node, const char *job, const char *reason, char *problem, size_t size)
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

static char where[512];
static char node[256];
static const char *job_id;

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

/* isUnreachable() of agent-client.ts, on an UNAVAILABLE status's details */
static int unreachable_details(const char *d)
{
    static const char *const words[] = { "No connection established", "ENOENT", "ECONNREFUSED", "connect", "Connection dropped" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasestr(d, words[i]) != NULL)
            return 1;
    return 0;
}

/* isRetryable() of hook-retry.ts, on berthd's answer */
static int retryable(const struct grpc_result *r)
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
static int no_retry(void)
{
    char t[64];
    if (trim_env("BERTH_HOOK_RETRY_SECONDS", t, sizeof t) != 0 || t[0] == '\0')
        return 0;
    char *end;
    double n = strtod(t, &end);
    return *end == '\0' && isfinite(n) && n >= 0 && floor(n * 1000) == 0;
}

static void print_warning(const uint8_t *p, size_t n, void *ctx)
{
    (void)ctx;
    fwrite(p, 1, n, stdout);
    fputc('\n', stdout);
}

static const char *status_name(int code)
{
    static const char *const names[] = { "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
        "DATA_LOSS", "UNAUTHENTICATED" };
    return code >= 0 && code < (int)(sizeof names / sizeof names[0]) ? names[code] : "UNKNOWN";
}

static int matches(const char *s, int step)
{
    size_t n = strlen(s);
    if (step && strcmp(s, "batch") == 0)
        return 1;
    return n >= 1 && n <= 20 && strspn(s, "0123456789") == n;
}

/* containerImage(env) of slurm-env.ts is '' */
static int no_container_image(void)
{
    const char *v = getenv("SPANK_BERTH_CONTAINER_IMAGE");
    if (v == NULL)
        v = env_or("SPANK__SLURM_SPANK_OPTION_berth_container_image", "");
    char t[4096];
    return trim(v, strlen(v), t, sizeof t) == 0 && t[0] == '\0';
}

/* hasStepFiles(env) of slurm-env.ts: task files of the job's container steps on this node */
static int has_step_files(void)
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

/* agentTarget() of agent-client.ts as root: the node (SLURMD_NODENAME, else the short host name) and its admin socket */
static int target(char *socket_path, size_t size)
{
    const char *n = env_or("SLURMD_NODENAME", "");
    if (*n) {
        snprintf(node, sizeof node, "%s", n);
    } else {
        if (gethostname(node, sizeof node) != 0)
            return -1;
        node[sizeof node - 1] = '\0';
        node[strcspn(node, ".")] = '\0';
    }
    const char *run_dir = env_or("BERTH_RUN_DIR", "");
    snprintf(socket_path, size, "%s/%s/admin.sock", *run_dir ? run_dir : "/run/berth", node);
    return 0;
}

/*
 * The job's epilogue (runHook('epilog') of hook.ts): done, or berthd's refusal on stderr and
 * exit 1. berthd away, recovering, cut off or too slow: the Node hook, which retries and then
 * leaves the epilog in the spool for berthd (hook-retry.ts epilogueOrSpool); JobEpilogue is
 * idempotent per job id, so its asking again is harmless. After a deadline it gets one second
 * (its own deadline would have spooled at once).
 */
static int job_epilogue(void)
{
    char socket_path[4096], image[4096];
    job_id = env_or("SLURM_JOB_ID", "");
    const char *v = getenv("SPANK_BERTH_CONTAINER_IMAGE");
    if (v == NULL)
        v = env_or("SPANK__SLURM_SPANK_OPTION_berth_container_image", "");
    /* --container-save: its image goes in the request of the job's first node only, by the
     * expanded node list (hook.ts saveOnNode), which the Node hook reads */
    char save[8];
    if (geteuid() != 0 || getuid() != 0 || !matches(job_id, 0) || target(socket_path, sizeof socket_path) != 0
        || trim(v, strlen(v), image, sizeof image) != 0 || trim_env("SPANK_BERTH_CONTAINER_SAVE", save, sizeof save) != 0 || save[0] != '\0')
        return fallback();
    long timeout_ms = 300000;
    char t[64];
    if (trim_env("BERTH_EPILOG_TIMEOUT_SECONDS", t, sizeof t) == 0 && t[0] != '\0') {
        char *end;
        double sec = strtod(t, &end);
        if (*end == '\0' && isfinite(sec) && sec > 0 && sec < 1)
            return fallback();
        if (*end == '\0' && isfinite(sec) && sec >= 1 && sec < 1e9)
            timeout_ms = (long)floor(sec) * 1000;
    }
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

/* ---- the job's prologue (services/cli/hook.ts runHook('prolog'), prologueRequest) ---- */

/*
 * Number(text) of JavaScript for what Slurm writes (decimal numbers, '' as 0, anything else
 * NaN); -1 for what this does not read as Node would (0x.., 0o.., 0b.., bytes past ASCII).
 */
static int js_number(const char *text, double *v)
{
    char t[256];
    if (trim(text, strlen(text), t, sizeof t) != 0)
        return -1;
    for (const char *c = t; *c; c++)
        if ((unsigned char)*c >= 0x80)
            return -1;
    const char *d = t[0] == '+' || t[0] == '-' ? t + 1 : t;
    if (t[0] == '0' && strchr("xXoObB", t[1]) != NULL && t[1] != '\0')
        return -1;
    if (t[0] == '\0') {
        *v = 0;
        return 0;
    }
    if (strcmp(d, "Infinity") == 0) {
        *v = INFINITY;
        return 0;
    }
    /* [+-](digits[.digits]|.digits)([eE][+-]digits) */
    const char *c = d;
    size_t int_digits = strspn(c, "0123456789");
    c += int_digits;
    size_t frac_digits = 0;
    if (*c == '.') {
        frac_digits = strspn(c + 1, "0123456789");
        c += 1 + frac_digits;
    }
    int ok = int_digits + frac_digits > 0;
    if (ok && (*c == 'e' || *c == 'E')) {
        const char *e = c + 1 + (c[1] == '+' || c[1] == '-');
        size_t exp_digits = strspn(e, "0123456789");
        ok = exp_digits > 0;
        c = e + exp_digits;
    }
    *v = ok && *c == '\0' ? strtod(t, NULL) : NAN;
    return 0;
}

/* num() of hook.ts: a positive finite number, floored, else 0; -1 as js_number */
static int num_env(const char *name, double *v)
{
    double n;
    if (js_number(env_or(name, ""), &n) != 0)
        return -1;
    *v = isfinite(n) && n > 0 ? floor(n) : 0;
    return 0;
}

/*
 * The position of NAME in expandHostlist(LIST) (services/shared/hostlist.ts), or -1 when it is
 * not there; -2 for a form this does not read (more than one bracket in a name, nested or
 * unbalanced brackets, a range that is not digits or digits-digits), which goes to Node.
 * Slurm writes "n[1-3,7],gpu[01-02],login": a range keeps the width of its first number.
 */
static long hostlist_index(const char *list, const char *name)
{
    long index = 0;
    for (const char *item = list; ; ) {
        const char *end = item;
        int depth = 0;
        for (; *end && !(*end == ',' && depth == 0); end++) {
            if (*end == '[' && ++depth > 1)
                return -2;
            if (*end == ']' && --depth < 0)
                return -2;
        }
        if (depth != 0)
            return -2;
        char t[1024];
        if (trim(item, (size_t)(end - item), t, sizeof t) != 0)
            return -2;
        for (const char *c = t; *c; c++)
            if ((unsigned char)*c >= 0x80)
                return -2;
        char *open = strchr(t, '[');
        if (t[0] == '\0') {
            /* an empty item is dropped */
        } else if (open == NULL) {
            if (strcmp(t, name) == 0)
                return index;
            index++;
        } else {
            char *close = strchr(open, ']');
            if (close == open + 1 || strchr(close + 1, '[') != NULL || strchr(close + 1, ']') != NULL)
                return -2;
            *open = '\0';
            *close = '\0';
            const char *prefix = t, *suffix = close + 1;
            size_t plen = strlen(prefix);
            for (char *r = open + 1, *next; r != NULL; r = next) {
                char *comma = strchr(r, ',');
                next = comma ? comma + 1 : NULL;
                if (comma)
                    *comma = '\0';
                char *dash = strchr(r, '-');
                const char *lo = r, *hi = r;
                if (dash) {
                    *dash = '\0';
                    hi = dash + 1;
                }
                size_t width = strlen(lo);
                if (width == 0 || width > 15 || strspn(lo, "0123456789") != width || *hi == '\0' || strlen(hi) > 15 || strspn(hi, "0123456789") != strlen(hi))
                    return -2;
                long long l = strtoll(lo, NULL, 10), h = strtoll(hi, NULL, 10);
                if (h < l || h - l > 1000000)
                    return -2;
                /* the name's number, when it has this prefix and suffix */
                size_t nlen = strlen(name), slen = strlen(suffix);
                long long want = -1;
                if (nlen > plen + slen && strncmp(name, prefix, plen) == 0 && strcmp(name + nlen - slen, suffix) == 0) {
                    size_t dlen = nlen - plen - slen;
                    const char *digits = name + plen;
                    if (dlen <= 15 && strspn(digits, "0123456789") >= dlen) {
                        char buf[16];
                        memcpy(buf, digits, dlen);
                        buf[dlen] = '\0';
                        long long n = strtoll(buf, NULL, 10);
                        char formatted[32];
                        snprintf(formatted, sizeof formatted, "%0*lld", (int)width, n);
                        if (strcmp(formatted, buf) == 0)
                            want = n;
                    }
                }
                if (want >= l && want <= h)
                    return index + (long)(want - l);
                index += (long)(h - l + 1);
            }
        }
        if (*end == '\0')
            return -1;
        item = end + 1;
    }
}

/* expandCounts(SLURM_JOB_CPUS_PER_NODE)[INDEX] ?? 0 ("2(x3),1": counts per node in node-list order); -1 as js_number */
static int count_at(const char *text, long index, double *v)
{
    *v = 0;
    for (const char *c = text; *c; c++)
        if ((unsigned char)*c >= 0x80)
            return -1;
    for (const char *part = text; part != NULL; ) {
        const char *comma = strchr(part, ',');
        size_t len = comma ? (size_t)(comma - part) : strlen(part);
        char t[64];
        int too_long = trim(part, len, t, sizeof t) != 0;
        part = comma ? comma + 1 : NULL;
        size_t d = too_long ? 16 : strspn(t, "0123456789");
        if (d > 15)
            return -1; /* past what a double holds exactly: Node reads it */
        if (d == 0)
            continue;
        long long n = strtoll(t, NULL, 10), times = 1;
        if (t[d] == '(') {
            if (t[d + 1] != 'x')
                continue;
            size_t k = strspn(t + d + 2, "0123456789");
            if (k > 15)
                return -1;
            if (k == 0 || strcmp(t + d + 2 + k, ")") != 0)
                continue;
            times = strtoll(t + d + 2, NULL, 10);
        } else if (t[d] != '\0') {
            continue;
        }
        if (index < times) {
            *v = (double)n;
            return 0;
        }
        index -= (long)times;
    }
    return 0;
}

/* allocationOnNode() of hook.ts: CPUs and memory the job holds here, as the prolog environment tells */
static int allocation(double *cpus, double *memory_bytes)
{
    double per_node, per_cpu;
    if (num_env("SLURM_CPUS_ON_NODE", cpus) != 0 || num_env("SLURM_MEM_PER_NODE", &per_node) != 0 || num_env("SLURM_MEM_PER_CPU", &per_cpu) != 0)
        return -1;
    if (*cpus == 0) {
        const char *list = getenv("SLURM_JOB_NODELIST");
        if (list == NULL)
            list = env_or("SLURM_NODELIST", "");
        long index = hostlist_index(list, env_or("SLURMD_NODENAME", ""));
        if (index == -2)
            return -1;
        if (count_at(env_or("SLURM_JOB_CPUS_PER_NODE", ""), index < 0 ? 0 : index, cpus) != 0)
            return -1;
    }
    double mb = per_node != 0 ? per_node : per_cpu * *cpus;
    /* beyond what the request's fields carry as Node encodes them: Node says what it does */
    if (*cpus > 4294967295.0 || mb > 1099511627776.0)
        return -1;
    *memory_bytes = mb * 1024 * 1024;
    return 0;
}

static int job_prologue_request(struct pb_buf *b, const char *image)
{
    uint64_t uid, gid;
    char requested[4096];
    double cpus, memory_bytes, num_nodes;
    if (uint32_env("SLURM_JOB_UID", &uid) != 0 || uint32_env("SLURM_JOB_GID", &gid) != 0)
        return -1; /* the Node hook says why and drains the node */
    if (trim_env("SPANK_BERTH_CONTAINER_IMAGE_REQUESTED", requested, sizeof requested) != 0 || allocation(&cpus, &memory_bytes) != 0
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
    int rc = options(&o, "SPANK_");
    pb_message(b, 14, &o);
    pb_free(&o);
    return rc != 0 || b->failed ? -1 : 0;
}

/* secondsFromEnv(NAME, DEFAULT) of hook-retry.ts in ms; -1 for a timeout under a second (0 ms in Node: the Node hook's affair) */
static long timeout_env(const char *name, long default_ms)
{
    char t[64];
    if (trim_env(name, t, sizeof t) == 0 && t[0] != '\0') {
        char *end;
        double s = strtod(t, &end);
        if (*end == '\0' && isfinite(s) && s > 0 && s < 1)
            return -1;
        if (*end == '\0' && isfinite(s) && s >= 1 && s < 1e9)
            return (long)floor(s) * 1000;
    }
    return default_ms;
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
static int job_prologue(void)
{
    char socket_path[4096], image[4096];
    job_id = env_or("SLURM_JOB_ID", "");
    const char *v = getenv("SPANK_BERTH_CONTAINER_IMAGE");
    if (v == NULL)
        v = env_or("SPANK__SLURM_SPANK_OPTION_berth_container_image", "");
    if (geteuid() != 0 || getuid() != 0 || !matches(job_id, 0) || target(socket_path, sizeof socket_path) != 0 || trim(v, strlen(v), image, sizeof image) != 0)
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
    switch (r.outcome) {
    case GRPC_UNREACHABLE:
        return fallback();
    case GRPC_CUT:
        if (!no_retry())
            return fallback();
        snprintf(reason, sizeof reason, "berthd on %s is not reachable at %s (%s); is berthd running? (systemctl status berthd, or scripts/sandbox status)", node, socket_path, r.error);
        return prolog_failed(image, reason, "AGENT_UNAVAILABLE", 0);
    case GRPC_TIMEOUT:
        snprintf(reason, sizeof reason, "berthd on %s did not answer in time (%s)", node, r.error);
        return prolog_failed(image, reason, "TIMEOUT", 0);
    case GRPC_ANSWERED:
        break;
    }
    if (r.status == 0)
        return 0;
    if (retryable(&r) && !no_retry())
        return fallback();
    /* describeGrpcError() of agent-client.ts, hookFailure() of hook-faults.ts */
    int unreachable = r.status == 14 && unreachable_details(r.message);
    const char *code = r.berth_code[0] ? r.berth_code : unreachable ? "AGENT_UNAVAILABLE" : r.status == 4 ? "TIMEOUT" : "UNKNOWN";
    if (unreachable)
        snprintf(reason, sizeof reason, "berthd on %s is not reachable at %s (%s); is berthd running? (systemctl status berthd, or scripts/sandbox status)", node, socket_path, r.message);
    else if (r.status == 4)
        snprintf(reason, sizeof reason, "berthd on %s did not answer in time (%s)", node, r.message);
    else if (r.message[0])
        snprintf(reason, sizeof reason, "%s", r.message);
    else
        snprintf(reason, sizeof reason, "%d %s: ", r.status, status_name(r.status)); /* grpc-js's message without details */
    return prolog_failed(image, reason, code, strcmp(r.fault, "job") == 0);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--berth=", 8) == 0)
            berth = argv[i] + 8;
        else if (kind == NULL)
            kind = argv[i];
        else
            kind = "";
    }
    if (kind != NULL && strcmp(kind, "submit-check") == 0)
        return submit_check(berth);
    if (kind != NULL && (strcmp(kind, "prolog") == 0 || strcmp(kind, "epilog") == 0)) {
        /* the epilog also runs for a job whose steps had containers of their own */
        if (no_container_image() && !(strcmp(kind, "epilog") == 0 && has_step_files()))
            return 0;
        return strcmp(kind, "epilog") == 0 ? job_epilogue() : job_prologue();
    }
    int prolog = kind && strcmp(kind, "step-prolog") == 0;
    if (kind == NULL || (!prolog && strcmp(kind, "step-epilog") != 0)) {
        fprintf(stderr, "usage: berth-hook [--berth=PATH] step-prolog|step-epilog|prolog|epilog|submit-check\n");
        return 2;
    }
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
    long timeout_ms = prolog ? 600000 : 120000;
    char t[64];
    if (prolog && trim_env("BERTH_PROLOG_TIMEOUT_SECONDS", t, sizeof t) == 0 && t[0] != '\0') {
        char *end;
        double s = strtod(t, &end);
        if (*end == '\0' && isfinite(s) && s > 0 && s < 1)
            return fallback(); /* a timeout of 0 ms: as odd as the Node hook makes it */
        if (*end == '\0' && isfinite(s) && s >= 1 && s < 1e9)
            timeout_ms = (long)floor(s) * 1000;
    }
    struct grpc_result r;
    grpc_unary(socket_path, prolog ? SERVICE "StepPrologue" : SERVICE "StepEpilogue", req.data, req.len, timeout_ms, &r);
    pb_free(&req);

    static char reason[16384];
    switch (r.outcome) {
    case GRPC_UNREACHABLE:
        return fallback();
    case GRPC_CUT:
        if (!no_retry())
            return fallback();
        snprintf(reason, sizeof reason, "berthd on %s is not reachable at %s (%s); is berthd running? (systemctl status berthd, or scripts/sandbox status)", node, socket_path, r.error);
        return failed(reason, "AGENT_UNAVAILABLE", 0);
    case GRPC_TIMEOUT:
        snprintf(reason, sizeof reason, "berthd on %s did not answer in time (%s)", node, r.error);
        return failed(reason, "TIMEOUT", 0);
    case GRPC_ANSWERED:
        break;
    }
    if (r.status == 0) {
        int rc = 0;
        if (prolog && pb_each_bytes(r.body, r.body_len, 5, print_warning, NULL) != 0)
            rc = failed("berthd's answer could not be read (a malformed StepPrologueResponse)", "UNKNOWN", 0);
        free(r.body);
        fflush(stdout);
        return rc;
    }
    if (retryable(&r) && !no_retry())
        return fallback();
    const char *code = r.berth_code[0] ? r.berth_code
                     : r.status == 14 && unreachable_details(r.message) ? "AGENT_UNAVAILABLE"
                     : r.status == 4 ? "TIMEOUT" : "UNKNOWN";
    if (r.status == 4 && !r.berth_code[0])
        snprintf(reason, sizeof reason, "berthd on %s did not answer in time (%s)", node, r.message);
    else if (r.status == 14 && unreachable_details(r.message))
        snprintf(reason, sizeof reason, "berthd on %s is not reachable at %s (%s); is berthd running? (systemctl status berthd, or scripts/sandbox status)", node, socket_path, r.message);
    else if (r.message[0])
        snprintf(reason, sizeof reason, "%s", r.message);
    else
        snprintf(reason, sizeof reason, "%d %s: ", r.status, status_name(r.status)); /* grpc-js's message without details */
    return failed(reason, code, strcmp(r.fault, "job") == 0);
}
