/*
 * berth-exec: `berth exec [--tty|-t|--no-tty] [--] CMD [ARGS...]` without a Node.js process.
 * srun runs it once per task, so its start is the step's start (docs/benchmarks.md, "The hot
 * path"). It does what services/cli/exec.ts runExec does, read from the same variables and
 * said in the same words: the same checks before the call (exit 125 for berth's own
 * failures), a munge credential bound to the method and job (libmunge, as `munge -s` makes it:
 * services/shared/munge.ts mungePayload), the ExecStep stream over berthd's user socket
 * (berth_grpc.c), its first request as exec.ts sends it (test/unit/berth-exec.test.ts decodes
 * both with the real service definition), stdin relayed from `started` on and closed at EOF,
 * stdout and stderr, the step's exit status as this process's, the signals exec.ts forwards,
 * and with a terminal: raw mode while attached (restored on every way out), the window size at
 * the start and on SIGWINCH.
 *
 * It hands everything else to the Node client (`node berth.js exec ARGS...`, by exec with the
 * same environment and arguments), so nothing it does not do exactly as the reference does is
 * done differently: `--help`/`-h`, text that is not UTF-8 (Node would send it changed), an
 * environment or SLURM_PROCID or socket path out of the ordinary, no working directory, and
 * berthd not reachable (nothing was sent: the Node client says so in its own words).
 *
 *   berth-exec --node=NODE --berth-js=BERTH_JS exec ARGS...   (PREFIX/bin/berth runs it so)
 */
#define _GNU_SOURCE /* strcasestr */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <munge.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>
#include "berth_grpc.h"
#include "berth_pb.h"
#include "berth_utf8.h"

#define EXIT_BERTH_ERROR 125 /* exec.ts EXIT_BERTH_ERROR, as docker and podman use it */
#define METHOD_PATH "/berth.v1.NodeAgentService/ExecStep"
#define MUNGE_METADATA_KEY "x-berth-munge" /* services/shared/proto-names.ts */
#define DEFAULT_RUN_DIR "/run/berth"       /* services/shared/paths.ts */
#define STDIN_CHUNK 65536                  /* what Node reads from a pipe at a time */
#define MAX_QUEUED (1u << 20)              /* stop reading stdin while this much waits for berthd */

extern char **environ;

/* exec.ts FORWARDED_SIGNALS, with the names it sends */
static const struct { int sig; const char *name; } FORWARDED[] = {
    { SIGINT, "SIGINT" }, { SIGTERM, "SIGTERM" }, { SIGHUP, "SIGHUP" }, { SIGQUIT, "SIGQUIT" },
    { SIGUSR1, "SIGUSR1" }, { SIGUSR2, "SIGUSR2" }, { SIGCONT, "SIGCONT" }, { SIGALRM, "SIGALRM" },
};
#define N_FORWARDED (sizeof FORWARDED / sizeof FORWARDED[0])

static const char *node_bin, *berth_js;
static char **exec_args; /* "exec" and what follows it */
static int n_exec_args;

/* Hands the call to the Node client with the same arguments and environment; returns only when it cannot. */
static int hand_over(void)
{
    char **args = calloc((size_t)n_exec_args + 3, sizeof *args);
    if (args == NULL) {
        fputs("berth exec: out of memory\n", stderr);
        return EXIT_BERTH_ERROR;
    }
    args[0] = (char *)node_bin;
    args[1] = (char *)berth_js;
    for (int i = 0; i < n_exec_args; i++)
        args[i + 2] = exec_args[i];
    execv(node_bin, args);
    fprintf(stderr, "berth exec: cannot run %s %s: %s\n", node_bin, berth_js, strerror(errno));
    return EXIT_BERTH_ERROR;
}

/* ---- the terminal (services/cli/terminal.ts RawTerminal) ---- */

static struct termios saved_termios;
static int raw_on;

static void raw_restore(void)
{
    if (!raw_on)
        return;
    raw_on = 0;
    /* a terminal that is gone (hang-up) has nothing left to restore */
    tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_termios);
}

/* Node's setRawMode(true) (libuv's raw mode), then `stty -opost` as terminal.ts does after it */
static void raw_enter(void)
{
    if (raw_on || !isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_termios) != 0)
        return;
    struct termios t = saved_termios;
    t.c_iflag &= ~(tcflag_t)(BRKINT | ICRNL | INPCK | ISTRIP | IXON);
    t.c_oflag |= ONLCR;
    t.c_cflag |= CS8;
    t.c_lflag &= ~(tcflag_t)(ECHO | ICANON | IEXTEN | ISIG);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    t.c_oflag &= ~(tcflag_t)OPOST;
    if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0)
        raw_on = 1;
}

/* exec.ts fail(): raw mode off first (in raw mode a newline does not return the cursor) */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    raw_restore();
    char msg[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "berth exec: %s\n", msg);
    return EXIT_BERTH_ERROR;
}

/* terminal.ts windowSize: rows and cols of stdout's terminal when both are 1..65535, else 0 */
static void window_size(unsigned *rows, unsigned *cols, struct winsize *raw)
{
    struct winsize w = { 0 };
    *rows = *cols = 0;
    if (!isatty(STDOUT_FILENO) || ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) != 0) {
        if (raw)
            memset(raw, 0, sizeof *raw);
        return;
    }
    if (raw)
        *raw = w;
    if (w.ws_row >= 1 && w.ws_col >= 1) {
        *rows = w.ws_row;
        *cols = w.ws_col;
    }
}

/* ---- what exec.ts reads from the environment ---- */

/* An environment that process.env shows as it is: NAME=VALUE entries, UTF-8, each name once. */
static int environment_plain(void)
{
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || eq == *e || !utf8_ok(*e))
            return 0;
        for (char **f = environ; f != e; f++)
            if (strncmp(*f, *e, (size_t)(eq - *e) + 1) == 0)
                return 0;
    }
    return 1;
}

static int all_digits(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* A run dir and node name that path.join leaves as they are: no empty, `.` or `..` segment
 * (but a leading /), no trailing /. */
static int path_plain(const char *s)
{
    if (*s == '\0')
        return 0;
    const char *p = *s == '/' ? s + 1 : s;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        if (!slash)
            return 1;
        p = slash + 1;
    }
}

/* slurm-env.ts cgroupOf: the path of CONTROLLER's line in /proc/self/cgroup, into out; 0 or -1 */
static int cgroup_of(const char *text, const char *controller, char *out, size_t size)
{
    size_t clen = strlen(controller);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *a = memchr(line, ':', len);
        const char *b = a ? memchr(a + 1, ':', len - (size_t)(a + 1 - line)) : NULL;
        if (b) {
            for (const char *c = a + 1; c <= b;) {
                const char *comma = memchr(c, ',', (size_t)(b - c));
                const char *ce = comma ? comma : b;
                if ((size_t)(ce - c) == clen && memcmp(c, controller, clen) == 0) {
                    size_t plen = len - (size_t)(b + 1 - line);
                    if (plen >= size)
                        return -1;
                    memcpy(out, b + 1, plen);
                    out[plen] = '\0';
                    return 0;
                }
                c = ce + 1;
            }
        }
        if (!end)
            break;
        line = end + 1;
    }
    return -1;
}

/* Splits the last K segments of PATH (each after a /) into seg[], or -1 when it has fewer. */
static int last_segments(char *path, int k, char **seg)
{
    for (int i = k - 1; i >= 0; i--) {
        char *slash = strrchr(path, '/');
        if (slash == NULL)
            return -1;
        seg[i] = slash + 1;
        *slash = '\0';
    }
    return 0;
}

/* segment = PREFIX then one or more characters of SET: the rest, else NULL */
static const char *segment_value(const char *segment, const char *prefix, const char *set)
{
    size_t n = strlen(prefix);
    if (strncmp(segment, prefix, n) != 0 || segment[n] == '\0' || strspn(segment + n, set) != strlen(segment + n))
        return NULL;
    return segment + n;
}

#define DIGITS "0123456789"
#define LOWER_DIGITS "abcdefghijklmnopqrstuvwxyz0123456789"

/* slurm-env.ts ownSlurmStep and ownSlurmTask, from /proc/self/cgroup */
static void own_slurm_step_task(const char *job, char *step, size_t step_size, char *task, size_t task_size)
{
    step[0] = task[0] = '\0';
    char text[16384];
    int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return;
    text[n] = '\0';
    char path[4096];
    char *seg[3];
    const char *j, *s, *t;
    if (cgroup_of(text, "freezer", path, sizeof path) == 0 && last_segments(path, 2, seg) == 0 &&
        (j = segment_value(seg[0], "job_", DIGITS)) && (s = segment_value(seg[1], "step_", LOWER_DIGITS)) && strcmp(j, job) == 0)
        snprintf(step, step_size, "%s", s);
    if (step[0] && cgroup_of(text, "memory", path, sizeof path) == 0 && last_segments(path, 3, seg) == 0 &&
        (j = segment_value(seg[0], "job_", DIGITS)) && (s = segment_value(seg[1], "step_", LOWER_DIGITS)) &&
        (t = segment_value(seg[2], "task_", DIGITS)) && strcmp(j, job) == 0 && strcmp(s, step) == 0)
        snprintf(task, task_size, "%s", t);
}

/* ---- munge (services/shared/munge.ts encodeMunge) ---- */

/* The credential for berth.v1/ExecStep:JOB (malloc'd), or NULL with exec.ts's message said. */
static char *munge_credential(const char *job, int *code)
{
    char payload[64];
    snprintf(payload, sizeof payload, "berth.v1/ExecStep:%s", job);
    munge_ctx_t ctx = munge_ctx_create();
    char *cred = NULL;
    munge_err_t e = ctx ? munge_encode(&cred, ctx, payload, (int)strlen(payload)) : EMUNGE_NO_MEMORY;
    if (e == EMUNGE_SUCCESS) {
        munge_ctx_destroy(ctx);
        return cred;
    }
    /* what the munge command says on its stderr, which the Node client quotes */
    char said[1024];
    snprintf(said, sizeof said, "munge: Error: %s", ctx && munge_ctx_strerror(ctx) ? munge_ctx_strerror(ctx) : munge_strerror(e));
    char *nl = strchr(said, '\n');
    if (nl)
        *nl = '\0';
    if (ctx)
        munge_ctx_destroy(ctx);
    free(cred);
    static const char *const down[] = { "Failed to access", "Did you start munged", "socket", "Connection refused", "No such file or directory" };
    for (size_t i = 0; i < sizeof down / sizeof down[0]; i++)
        if (strcasestr(said, down[i])) {
            *code = fail("munged is not running on this node (%s); berth authenticates you to berthd with munge: ask the site admins to start it (systemctl start munge)", said);
            return NULL;
        }
    *code = fail("munge could not make a credential to authenticate you to berthd (%s); ask the site admins to check munge on this node", said);
    return NULL;
}

/* ---- the call ---- */

static struct grpc_stream *call;
static int started, have_exit, exit_code, parse_failed;
static int print_warnings;
static int out_gone[3]; /* stdout or stderr refused a write (EPIPE): later output is dropped */

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0 && !out_gone[fd]) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd q = { .fd = fd, .events = POLLOUT };
            poll(&q, 1, -1);
        } else {
            out_gone[fd] = 1;
        }
    }
}

static void send_request(const struct pb_buf *m)
{
    if (m->failed || grpc_stream_send(call, m->data, m->len) != 0) {
        fputs("berth exec: out of memory\n", stderr);
        raw_restore();
        _exit(EXIT_BERTH_ERROR);
    }
}

/* one ExecStepRequest with one field of its oneof */
static void send_bytes(unsigned field, const void *p, size_t n)
{
    struct pb_buf m = { 0 };
    pb_bytes(&m, field, p, n);
    send_request(&m);
    pb_free(&m);
}

static void send_stdin_close(void)
{
    struct pb_buf m = { 0 };
    pb_uint(&m, 3, 1);
    send_request(&m);
    pb_free(&m);
}

static void send_resize(unsigned rows, unsigned cols)
{
    struct pb_buf size = { 0 }, m = { 0 };
    pb_uint(&size, 1, rows);
    pb_uint(&size, 2, cols);
    pb_message(&m, 5, &size);
    send_request(&m);
    pb_free(&size);
    pb_free(&m);
}

/* ExecStarted: its warnings, said once by task 0 */
static void on_started(const uint8_t *p, size_t n)
{
    size_t at = 0;
    struct pb_field f;
    int k;
    while ((k = pb_next(p, n, &at, &f)) == 1)
        if (f.number == 2 && f.wire == 2 && print_warnings) {
            write_all(STDERR_FILENO, f.bytes, f.len);
            write_all(STDERR_FILENO, (const uint8_t *)"\n", 1);
        }
    if (k < 0)
        parse_failed = 1;
}

static void on_exit_message(const uint8_t *p, size_t n)
{
    size_t at = 0;
    struct pb_field f;
    int k, code = 0;
    while ((k = pb_next(p, n, &at, &f)) == 1)
        if (f.number == 1 && f.wire == 0)
            code = (int32_t)(uint32_t)f.varint;
    if (k < 0) {
        parse_failed = 1;
        return;
    }
    exit_code = code;
    have_exit = 1;
    grpc_stream_end(call);
}

/* one ExecStepResponse: the last field of its oneof is the one it holds (proto3) */
static void on_response(const uint8_t *p, size_t n, void *ctx)
{
    (void)ctx;
    if (parse_failed)
        return;
    size_t at = 0;
    struct pb_field f, last = { 0 };
    int k;
    while ((k = pb_next(p, n, &at, &f)) == 1)
        if (f.number >= 1 && f.number <= 4 && f.wire == 2)
            last = f;
    if (k < 0) {
        parse_failed = 1;
        return;
    }
    if (last.number == 2)
        write_all(STDOUT_FILENO, last.bytes, last.len);
    else if (last.number == 3)
        write_all(STDERR_FILENO, last.bytes, last.len);
    else if (last.number == 1 && !started) {
        started = 1;
        on_started(last.bytes, last.len);
    } else if (last.number == 4)
        on_exit_message(last.bytes, last.len);
}

static const char *status_name(int code)
{
    static const char *const names[] = { "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED" };
    return code >= 0 && code <= 16 ? names[code] : "UNKNOWN";
}

/* agent-client.ts describeGrpcError for the user socket, status CODE with DETAILS */
static int fail_grpc(int code, const char *details, const char *node, const char *socket)
{
    static const char *const unreachable[] = { "No connection established", "ENOENT", "ECONNREFUSED", "connect", "Connection dropped" };
    if (code == 14)
        for (size_t i = 0; i < sizeof unreachable / sizeof unreachable[0]; i++)
            if (strcasestr(details, unreachable[i]))
                return fail("berthd on %s is not reachable at %s (%s); is berthd running? (systemctl status berthd, or scripts/sandbox status)", node, socket, details);
    if (code == 4)
        return fail("berthd on %s did not answer in time (%s)", node, details);
    if (details[0])
        return fail("%s", details);
    return fail("%d %s: %s", code, status_name(code), details);
}

static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(sig_pipe[1], &b, 1) < 0) {
        /* the pipe is full: that many signals are waiting already */
    }
    errno = saved;
}

static void catch_signal(int sig)
{
    struct sigaction sa = { 0 };
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(sig, &sa, NULL);
}

static int exit_with(int code)
{
    raw_restore();
    return code;
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc; i++) {
        if (strncmp(argv[i], "--node=", 7) == 0)
            node_bin = argv[i] + 7;
        else if (strncmp(argv[i], "--berth-js=", 11) == 0)
            berth_js = argv[i] + 11;
        else
            break;
    }
    if (!node_bin || !berth_js || i >= argc || strcmp(argv[i], "exec") != 0) {
        fputs("usage: berth-exec --node=NODE --berth-js=BERTH_JS exec [--tty|-t|--no-tty] [--] CMD [ARGS...] (PREFIX/bin/berth runs it)\n", stderr);
        return 2;
    }
    exec_args = argv + i;
    n_exec_args = argc - i;
    char **args = argv + i + 1;
    int nargs = argc - i - 1;
    /* services/cli/main.ts: `berth exec --help` is the option parser's */
    if (nargs > 0 && (strcmp(args[0], "--help") == 0 || strcmp(args[0], "-h") == 0))
        return hand_over();
    /* terminal.ts parseExecArgs */
    int tty_flag = -1, k = 0;
    for (; k < nargs; k++) {
        if (strcmp(args[k], "--tty") == 0 || strcmp(args[k], "-t") == 0)
            tty_flag = 1;
        else if (strcmp(args[k], "--no-tty") == 0)
            tty_flag = 0;
        else
            break;
    }
    if (k < nargs && strcmp(args[k], "--") == 0)
        k++;
    char **command = args + k;
    int ncommand = nargs - k;
    for (int a = 0; a < nargs; a++)
        if (!utf8_ok(args[a]))
            return hand_over();
    if (!environment_plain())
        return hand_over();

    /* exec.ts runExec, in its order */
    const char *job = getenv("SLURM_JOB_ID");
    if (!job || !*job)
        return fail("not inside a Slurm allocation (SLURM_JOB_ID is not set); run it as `srun berth exec -- CMD` in a job submitted with --container-image");
    if (!all_digits(job, 20))
        return fail("SLURM_JOB_ID: job id '%s' is not a Slurm job id: a job id is digits only, at most 20, as squeue shows it (e.g. 1234)", job);
    if (ncommand == 0)
        return fail("no command given; usage: berth exec [--] CMD [ARGS...]");
    const char *node = getenv("SLURMD_NODENAME");
    if (!node || !*node)
        return fail("SLURMD_NODENAME is not set, so the node is unknown; run berth exec through srun");
    const char *run_dir = getenv("BERTH_RUN_DIR");
    if (!run_dir || !*run_dir)
        run_dir = DEFAULT_RUN_DIR;
    const char *procid = getenv("SLURM_PROCID");
    if ((procid && !all_digits(procid, 9)) || !path_plain(run_dir) || !path_plain(node) || strchr(node, '/'))
        return hand_over(); /* Number() and path.join read these their own way */
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL || !utf8_ok(cwd))
        return hand_over();
    int root = getuid() == 0;
    char socket[PATH_MAX];
    if ((size_t)snprintf(socket, sizeof socket, "%s/%s/%s", run_dir, node, root ? "admin.sock" : "user.sock") >= sizeof socket)
        return hand_over();

    char *cred = NULL;
    if (!root) {
        int code = EXIT_BERTH_ERROR;
        if ((cred = munge_credential(job, &code)) == NULL)
            return code;
    }
    struct grpc_header md[] = { { MUNGE_METADATA_KEY, cred } };
    struct grpc_result r;
    call = grpc_stream_open(socket, METHOD_PATH, md, cred ? 1 : 0, "berth-exec", on_response, NULL, &r);
    free(cred);
    if (call == NULL)
        return hand_over(); /* nothing was sent: the Node client says why, as it always has */

    int tty = tty_flag >= 0 ? tty_flag : isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    unsigned rows = 0, cols = 0;
    struct winsize last_size = { 0 };
    if (tty)
        window_size(&rows, &cols, &last_size);
    const char *step_id = getenv("SLURM_STEP_ID");
    char slurm_step[64], slurm_task[64];
    own_slurm_step_task(job, slurm_step, sizeof slurm_step, slurm_task, sizeof slurm_task);
    print_warnings = procid == NULL || strcmp(procid, "0") == 0;

    struct pb_buf start = { 0 }, first = { 0 };
    pb_string(&start, 1, job);
    pb_string(&start, 2, step_id ? step_id : "");
    for (int a = 0; a < ncommand; a++)
        pb_string(&start, 3, command[a]);
    pb_string(&start, 4, cwd);
    for (char **e = environ; *e; e++)
        pb_string(&start, 5, *e);
    pb_uint(&start, 6, (uint64_t)tty);
    pb_uint(&start, 7, procid ? strtoull(procid, NULL, 10) : 0);
    pb_uint(&start, 8, rows);
    pb_uint(&start, 9, cols);
    pb_string(&start, 10, slurm_step);
    pb_string(&start, 11, slurm_task);
    pb_message(&first, 1, &start);
    send_request(&first);
    pb_free(&start);
    pb_free(&first);
    /* raw from now on, so that keys typed while the step starts are not echoed or acted on here */
    if (tty)
        raw_enter();
    atexit(raw_restore);

    signal(SIGPIPE, SIG_IGN); /* as Node: a closed stdout is an error on write, not a death */
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return exit_with(fail("pipe: %s", strerror(errno)));
    for (size_t s = 0; s < N_FORWARDED; s++)
        catch_signal(FORWARDED[s].sig);
    int follow_size = tty && isatty(STDOUT_FILENO);
    if (follow_size)
        catch_signal(SIGWINCH);

    int stdin_open = fcntl(STDIN_FILENO, F_GETFD) != -1;
    int stdin_closed_sent = 0;
    short revents = 0;
    for (;;) {
        int ended = grpc_stream_io(call, revents);
        if (ended || parse_failed)
            break;
        /* stdin from `started` on, until EOF or the step's exit */
        if (started && !have_exit && !stdin_open && !stdin_closed_sent) {
            send_stdin_close();
            stdin_closed_sent = 1;
            continue;
        }
        struct pollfd p[3] = {
            { .fd = grpc_stream_fd(call), .events = grpc_stream_events(call) },
            { .fd = sig_pipe[0], .events = POLLIN },
            { .fd = -1 },
        };
        int read_stdin = started && !have_exit && stdin_open && grpc_stream_queued(call) < MAX_QUEUED;
        if (read_stdin)
            p[2] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR) {
                revents = 0;
                continue;
            }
            return exit_with(fail("poll: %s", strerror(errno)));
        }
        revents = p[0].revents;
        if (p[1].revents) {
            unsigned char sigs[64];
            ssize_t n = read(sig_pipe[0], sigs, sizeof sigs);
            for (ssize_t s = 0; s < n; s++) {
                if (sigs[s] == SIGWINCH) {
                    struct winsize now;
                    unsigned nr, nc;
                    window_size(&nr, &nc, &now);
                    if (now.ws_row == last_size.ws_row && now.ws_col == last_size.ws_col)
                        continue; /* Node's stdout says 'resize' only when the size changed */
                    last_size = now;
                    if (nr && nc)
                        send_resize(nr, nc);
                    continue;
                }
                for (size_t f = 0; f < N_FORWARDED; f++)
                    if (FORWARDED[f].sig == sigs[s] && !have_exit)
                        send_bytes(4, FORWARDED[f].name, strlen(FORWARDED[f].name));
            }
        }
        if (read_stdin && p[2].revents) {
            static uint8_t buf[STDIN_CHUNK];
            ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
            if (n > 0)
                send_bytes(2, buf, (size_t)n);
            else if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
                stdin_open = 0; /* EOF; a read error (a hung-up terminal) ends stdin too */
        }
    }
    if (parse_failed)
        return exit_with(fail("Failed to parse server response"));
    if (have_exit)
        return exit_with(exit_code & 0xff);
    if (r.outcome == GRPC_ANSWERED && r.status == 0)
        return exit_with(fail("berthd ended the step without an exit status"));
    if (r.outcome == GRPC_ANSWERED)
        return exit_with(fail_grpc(r.status, r.message, node, socket));
    return exit_with(fail_grpc(14, r.error, node, socket));
}
