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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
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
