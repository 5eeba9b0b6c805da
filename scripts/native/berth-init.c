/*
 * berth-init: a tiny static helper bind-mounted read-only into every berth job container.
 *
 *   berth-init pause            PID 1 of the job container: keeps it up for the job's lifetime
 *                               whatever the image holds, reaps orphaned processes, and exits
 *                               cleanly on SIGTERM/SIGINT (docker stop).
 *   berth-init exec -- CMD ...  wraps every step: makes CMD the leader of a new session and
 *                               process group, so berthd can signal the step's whole process
 *                               tree (kill(-pgid)) when srun is cancelled or the client dies,
 *                               which a plain `docker exec` does not do. With a terminal and
 *                               BERTH_TTY_SIZE=ROWSxCOLS it sets the window size before CMD
 *                               runs (docker's resize comes after the process started, too late
 *                               for `stty size` or a full-screen program's first draw).
 *                               With BERTH_PLACEMENT_WAIT_MS=N it waits up to N ms for
 *                               berthd's SIGCONT before CMD runs: berthd moves it into the
 *                               freezer cgroup of the Slurm step that ran `berth exec` first,
 *                               so CMD and all it starts are that step's for Slurm's proctrack.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int do_pause(void) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        int sig = 0;
        if (sigwait(&all, &sig) != 0) continue;
        if (sig == SIGCHLD) {
            while (waitpid(-1, NULL, WNOHANG) > 0) {
            }
        } else if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
            return 0;
        }
    }
}

/* BERTH_TTY_SIZE=ROWSxCOLS (from berthd) onto the terminal; the variable never reaches CMD */
static void set_tty_size(void) {
    const char *v = getenv("BERTH_TTY_SIZE");
    if (!v) return;
    unsigned rows = 0, cols = 0;
    char rest = 0;
    if (isatty(STDIN_FILENO) && sscanf(v, "%ux%u%c", &rows, &cols, &rest) == 2 && rows > 0 && cols > 0 &&
        rows <= 0xffff && cols <= 0xffff) {
        struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
        (void)ioctl(STDIN_FILENO, TIOCSWINSZ, &ws);
    }
    unsetenv("BERTH_TTY_SIZE");
}

/*
 * BERTH_PLACEMENT_WAIT_MS=N (from berthd): SIGCONT blocked, then wait for it up to N ms on a
 * signalfd. berthd reads SigBlk in /proc/PID/status to see that SIGCONT is blocked (so its
 * SIGCONT stays pending and none is lost; sigtimedwait would unblock it while waiting, which
 * hides the mask), writes PID to the step's cgroup.procs, then sends SIGCONT. Past N ms CMD
 * runs anyway, unplaced: a berthd that fails or is slow never keeps a step from starting.
 * CMD inherits the mask berth-init was started with; the variable never reaches CMD.
 */
static void wait_for_placement(void) {
    const char *v = getenv("BERTH_PLACEMENT_WAIT_MS");
    if (!v) return;
    char *end = NULL;
    long ms = strtol(v, &end, 10);
    int ok = end != v && *end == '\0' && ms > 0 && ms <= 60000;
    unsetenv("BERTH_PLACEMENT_WAIT_MS");
    if (!ok) return;
    sigset_t cont, old;
    sigemptyset(&cont);
    sigaddset(&cont, SIGCONT);
    if (sigprocmask(SIG_BLOCK, &cont, &old) != 0) return;
    int fd = signalfd(-1, &cont, SFD_CLOEXEC);
    if (fd >= 0) {
        struct timespec until, now;
        clock_gettime(CLOCK_MONOTONIC, &until);
        long long deadline = (long long)until.tv_sec * 1000 + until.tv_nsec / 1000000 + ms;
        for (;;) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            long long left = deadline - ((long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
            if (left <= 0) break;
            struct pollfd p = {.fd = fd, .events = POLLIN};
            int n = poll(&p, 1, (int)left);
            if (n > 0) {
                struct signalfd_siginfo si;
                (void)!read(fd, &si, sizeof si);
                break;
            }
            if (n == 0 || errno != EINTR) break;
        }
        close(fd);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static int do_exec(int argc, char **argv) {
    int i = 0;
    if (i < argc && strcmp(argv[i], "--") == 0) i++;
    if (i >= argc) {
        fprintf(stderr, "berth-init exec: no command given\n");
        return 2;
    }
    if (setsid() < 0 && errno != EPERM) {
        fprintf(stderr, "berth-init exec: setsid: %s\n", strerror(errno));
        return 126;
    }
    if (isatty(STDIN_FILENO)) (void)ioctl(STDIN_FILENO, TIOCSCTTY, 0);
    set_tty_size();
    wait_for_placement();
    execvp(argv[i], &argv[i]);
    int err = errno;
    fprintf(stderr, "berth: %s: %s\n", argv[i], err == ENOENT ? "command not found in the container" : strerror(err));
    return err == ENOENT ? 127 : 126;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "pause") == 0) return do_pause();
    if (argc >= 2 && strcmp(argv[1], "exec") == 0) return do_exec(argc - 2, argv + 2);
    fprintf(stderr, "usage: berth-init pause | berth-init exec -- CMD [ARGS...]\n");
    return 2;
}
