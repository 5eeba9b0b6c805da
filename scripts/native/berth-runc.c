/*
 * berth-runc: the OCI runtime dockerd runs containers with on a berth node (daemon.json
 * "runtimes" + "default-runtime"), in front of runc. Every command but `create` is runc's
 * own (exec'd at once, nothing added). For `create` it asks berthd first, over berthd's
 * root-only runtime socket, about the bundle dockerd wrote: berthd judges the container's
 * OCI spec as runc will act on it, may rewrite it (the job's cgroup, bind sources pinned),
 * and answers with the binds to pin. A pin is the host path opened by the job's user
 * themselves (their uid, gid and groups: the kernel decides what they may reach, ACLs
 * included), then bind-mounted from that open file onto a root-only path that the spec now
 * names: what runc mounts is exactly what the user could open, whatever happens to the path
 * later. After `runc create` the container holds its own copies and the pins are removed.
 *
 * Arguments: dockerd passes the runtime's runtimeArgs first:
 *   berth-runc [--berth-socket=PATH] [--berth-runc=/usr/sbin/runc] RUNC-ARGS...
 * The socket defaults to /run/berth/<short host name>/runtime.sock: berthd's default runDir
 * and node name.
 * Protocol (one request, one answer, lines):
 *   -> CREATE <container-id> <bundle-dir>
 *   <- PIN <uid> <gid> <gid,gid,...|-> <pin-path> <source>     (source last: it may hold spaces)
 *   <- OK | DENY <message>
 * A refusal, or berthd unreachable, fails the create: dockerd reports "OCI runtime create
 * failed: berth: <message>" to the client.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PINS 256
#define ANSWER_MAX (1 << 20)
#define TIMEOUT_MS 60000

static const char *log_path;      /* runc's --log: where the shim reads an error message */
static char *pin_paths[MAX_PINS];
static int pin_count;

/* The error the shim shows: runc's log format (one JSON object a line), and stderr. */
static void fail(const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "berth: %s\n", msg);
    if (log_path != NULL) {
        FILE *f = fopen(log_path, "a");
        if (f != NULL) {
            fputs("{\"level\":\"error\",\"msg\":\"berth: ", f);
            for (const char *p = msg; *p; p++) {
                if (*p == '"' || *p == '\\')
                    fprintf(f, "\\%c", *p);
                else if ((unsigned char)*p < 0x20)
                    fprintf(f, "\\u%04x", *p);
                else
                    fputc(*p, f);
            }
            time_t now = time(NULL);
            char ts[64];
            strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
            fprintf(f, "\",\"time\":\"%s\"}\n", ts);
            fclose(f);
        }
    }
}

static void unpin_all(void)
{
    for (int i = 0; i < pin_count; i++) {
        umount2(pin_paths[i], MNT_DETACH);
        if (rmdir(pin_paths[i]) != 0)
            unlink(pin_paths[i]);
    }
    pin_count = 0;
}

static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Asks berthd; returns its answer (NUL-terminated, malloc'd) or NULL after saying why. */
static char *ask_berthd(const char *socket_path, const char *id, const char *bundle)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (s < 0 || strlen(socket_path) >= sizeof addr.sun_path) {
        fail("cannot reach berthd on %s: %s", socket_path, s < 0 ? strerror(errno) : "path too long");
        return NULL;
    }
    strcpy(addr.sun_path, socket_path);
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fail("berthd is not reachable on %s (%s): containers start only once berthd runs", socket_path, strerror(errno));
        close(s);
        return NULL;
    }
    char req[8192];
    int n = snprintf(req, sizeof req, "CREATE %s %s\n", id, bundle);
    if (n < 0 || (size_t)n >= sizeof req || write_all(s, req, (size_t)n) != 0) {
        fail("could not send the request to berthd: %s", strerror(errno));
        close(s);
        return NULL;
    }
    shutdown(s, SHUT_WR);
    char *answer = malloc(ANSWER_MAX + 1);
    size_t used = 0;
    for (;;) {
        struct pollfd p = { .fd = s, .events = POLLIN };
        int r = poll(&p, 1, TIMEOUT_MS);
        if (r == 0) {
            fail("berthd did not answer within %d s", TIMEOUT_MS / 1000);
            break;
        }
        if (r < 0 && errno == EINTR)
            continue;
        ssize_t got = read(s, answer + used, ANSWER_MAX - used);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0 || used + (size_t)got >= ANSWER_MAX) {
            if (got < 0)
                fail("reading berthd's answer: %s", strerror(errno));
            answer[used] = '\0';
            close(s);
            return got < 0 ? (free(answer), NULL) : answer;
        }
        used += (size_t)got;
    }
    close(s);
    free(answer);
    return NULL;
}

static int send_fd(int sock, int fd)
{
    char data = 'f';
    struct iovec iov = { .iov_base = &data, .iov_len = 1 };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
    char data;
    struct iovec iov = { .iov_base = &data, .iov_len = 1 };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (c == NULL || c->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

/* Opens source as uid/gid/groups in a child; returns the open file or -1 after saying why. */
static int open_as_user(const char *source, uid_t uid, gid_t gid, const gid_t *gids, int ngids)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        fail("socketpair: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fail("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        if (setgroups((size_t)ngids, gids) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0)
            _exit(100);
        int fd = open(source, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            (void)!write(sv[1], &e, sizeof e);
            _exit(101);
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
            _exit(102);
        if (S_ISDIR(st.st_mode) && faccessat(fd, ".", X_OK, AT_EACCESS) != 0) {
            int e = EACCES;
            (void)!write(sv[1], &e, sizeof e);
            _exit(101);
        }
        _exit(send_fd(sv[1], fd) == 0 ? 0 : 103);
    }
    close(sv[1]);
    int fd = recv_fd(sv[0]);
    int e = 0;
    if (fd < 0)
        (void)!read(sv[0], &e, sizeof e);
    close(sv[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (fd >= 0)
        return fd;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 101)
        fail("the host path %s cannot be opened by uid %u (%s): a container may mount only what its user can open", source, (unsigned)uid, strerror(e ? e : EACCES));
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 102)
        fail("the host path %s is neither a directory nor a regular file", source);
    else
        fail("could not open %s as uid %u (helper status %d)", source, (unsigned)uid, status);
    return -1;
}

static int mkdirs(const char *path, mode_t mode)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

/* PIN <uid> <gid> <gids|-> <pin-path> <source> */
static int pin(char *line)
{
    char *save = NULL;
    char *uid_s = strtok_r(line, " ", &save), *gid_s = strtok_r(NULL, " ", &save);
    char *gids_s = strtok_r(NULL, " ", &save), *target = strtok_r(NULL, " ", &save);
    char *source = save;
    if (!uid_s || !gid_s || !gids_s || !target || !source || *source != '/' || *target != '/') {
        fail("berthd sent a malformed PIN line");
        return -1;
    }
    gid_t gids[256];
    int ngids = 0;
    if (strcmp(gids_s, "-") != 0) {
        for (char *g = strtok_r(gids_s, ",", &save); g && ngids < 256; g = strtok_r(NULL, ",", &save))
            gids[ngids++] = (gid_t)strtoul(g, NULL, 10);
    }
    if (pin_count >= MAX_PINS) {
        fail("more than %d host paths to mount", MAX_PINS);
        return -1;
    }
    int fd = open_as_user(source, (uid_t)strtoul(uid_s, NULL, 10), (gid_t)strtoul(gid_s, NULL, 10), gids, ngids);
    if (fd < 0)
        return -1;
    struct stat st;
    fstat(fd, &st);
    if (mkdirs(target, 0700) != 0) {
        fail("cannot make the directory above %s: %s", target, strerror(errno));
        close(fd);
        return -1;
    }
    int made = S_ISDIR(st.st_mode) ? mkdir(target, 0700) : close(open(target, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
    if (made != 0) {
        fail("cannot make the pin %s: %s", target, strerror(errno));
        close(fd);
        return -1;
    }
    pin_paths[pin_count++] = strdup(target);
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int rc = mount(proc, target, NULL, MS_BIND | MS_REC, NULL);
    int e = errno;
    close(fd);
    if (rc != 0) {
        fail("cannot pin %s at %s: %s", source, target, strerror(e));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL;
    const char *runc = "/usr/sbin/runc";
    int first = 1;
    for (; first < argc && strncmp(argv[first], "--berth-", 8) == 0; first++) {
        if (strncmp(argv[first], "--berth-socket=", 15) == 0)
            socket_path = argv[first] + 15;
        else if (strncmp(argv[first], "--berth-runc=", 13) == 0)
            runc = argv[first] + 13;
    }
    /* runc's own argv: argv[0] stays runc's name */
    char **rargv = calloc((size_t)(argc - first + 2), sizeof *rargv);
    rargv[0] = (char *)runc;
    int rargc = 1;
    for (int i = first; i < argc; i++)
        rargv[rargc++] = argv[i];
    rargv[rargc] = NULL;

    /* the subcommand: the first argument after runc's global flags */
    int cmd = 1;
    while (cmd < rargc && rargv[cmd][0] == '-') {
        const char *a = rargv[cmd];
        if (strcmp(a, "--log") == 0 && cmd + 1 < rargc)
            log_path = rargv[cmd + 1];
        else if (strncmp(a, "--log=", 6) == 0)
            log_path = a + 6;
        int takes_value = strchr(a, '=') == NULL && (strcmp(a, "--root") == 0 || strcmp(a, "--log") == 0 || strcmp(a, "--log-format") == 0 || strcmp(a, "--criu") == 0 || strcmp(a, "--rootless") == 0);
        cmd += takes_value ? 2 : 1;
    }
    if (cmd >= rargc || (strcmp(rargv[cmd], "create") != 0 && strcmp(rargv[cmd], "run") != 0)) {
        execv(runc, rargv);
        fprintf(stderr, "berth-runc: cannot run %s: %s\n", runc, strerror(errno));
        return 127;
    }
    if (strcmp(rargv[cmd], "run") == 0) {
        fail("runc run is not supported under berth: use create and start");
        return 1;
    }
    const char *bundle = NULL;
    for (int i = cmd + 1; i < rargc; i++) {
        if ((strcmp(rargv[i], "--bundle") == 0 || strcmp(rargv[i], "-b") == 0) && i + 1 < rargc)
            bundle = rargv[i + 1];
        else if (strncmp(rargv[i], "--bundle=", 9) == 0)
            bundle = rargv[i] + 9;
    }
    const char *id = rargv[rargc - 1];
    char cwd[4096];
    if (bundle == NULL)
        bundle = getcwd(cwd, sizeof cwd);
    char default_socket[512];
    if (socket_path == NULL) {
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        char *dot = strchr(host, '.');
        if (dot)
            *dot = '\0';
        snprintf(default_socket, sizeof default_socket, "/run/berth/%s/runtime.sock", host);
        socket_path = default_socket;
    }
    char *answer = ask_berthd(socket_path, id, bundle ? bundle : "");
    if (answer == NULL)
        return 1;
    int ok = 0;
    for (char *save = NULL, *line = strtok_r(answer, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "PIN ", 4) == 0) {
            if (pin(line + 4) != 0) {
                unpin_all();
                return 1;
            }
        } else if (strncmp(line, "DENY ", 5) == 0) {
            fail("%s", line + 5);
            unpin_all();
            return 1;
        } else if (strcmp(line, "OK") == 0) {
            ok = 1;
        }
    }
    if (!ok) {
        fail("berthd gave no verdict on container %s", id);
        unpin_all();
        return 1;
    }
    if (pin_count == 0) {
        execv(runc, rargv);
        fail("cannot run %s: %s", runc, strerror(errno));
        return 127;
    }
    pid_t child = fork();
    if (child == 0) {
        execv(runc, rargv);
        fprintf(stderr, "berth-runc: cannot run %s: %s\n", runc, strerror(errno));
        _exit(127);
    }
    int status = 0;
    while (child > 0 && waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    /* the container's mount namespace holds its own copies now */
    unpin_all();
    if (child < 0)
        return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
