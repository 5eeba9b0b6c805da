/*
 * What berth_spank.so needs in every SPANK context: its arguments from plugstack.conf, and a
 * run of the berth command (`berth submit-check`, `berth hook step-prolog`, ...) as a child
 * with a few variables added, its output read back. The entry points (berth_spank.c) and the
 * task code (berth_spank_tasks.c) call down into this file; it calls neither.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "berth_run.h"

#ifndef BERTH_BIN
#define BERTH_BIN "/usr/local/bin/berth"
#endif
#ifndef BERTH_HOOK_BIN
#define BERTH_HOOK_BIN "/usr/local/lib/berth/berth-hook" /* scripts/install.sh puts it beside the plugin */
#endif

void berth_parse_args(int ac, char **av, struct berth_args *a)
{
    a->berth = BERTH_BIN;
    a->site_registries = NULL;
    a->run_dir = "/run/berth";
    a->hook = BERTH_HOOK_BIN;
    for (int i = 0; i < ac; i++) {
        if (strncmp(av[i], "berth=", 6) == 0)
            a->berth = av[i] + 6;
        else if (strncmp(av[i], "site_registries=", 16) == 0)
            a->site_registries = av[i] + 16;
        else if (strncmp(av[i], "run_dir=", 8) == 0)
            a->run_dir = av[i] + 8;
        else if (strncmp(av[i], "hook=", 5) == 0)
            a->hook = av[i] + 5;
    }
}

/* Reads all of fd into buf (NUL-terminated, truncated to size - 1). */
static void read_all(int fd, char *buf, size_t size)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == size - 1) {
            char sink[512];
            while (read(fd, sink, sizeof sink) > 0) {
            }
            break;
        }
    }
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
}

/* Output and errors go to files, not pipes, so a large message cannot block the child. */
int berth_run(const char *berth, const char *const argv[], const char *const env[], char *out, size_t out_size)
{
    FILE *o = tmpfile();
    FILE *e = tmpfile();
    if (o == NULL || e == NULL) {
        snprintf(out, out_size, "berth: cannot make temporary files: %s", strerror(errno));
        if (o) fclose(o);
        if (e) fclose(e);
        return -1;
    }
    const char *args[16];
    int n = 0;
    args[n++] = berth;
    for (int i = 0; argv[i] != NULL && n < 15; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(out, out_size, "berth: cannot start %s: %s", berth, strerror(errno));
        fclose(o);
        fclose(e);
        return -1;
    }
    if (pid == 0) {
        dup2(fileno(o), STDOUT_FILENO);
        dup2(fileno(e), STDERR_FILENO);
        for (int i = 0; env != NULL && env[i] != NULL && env[i + 1] != NULL; i += 2)
            setenv(env[i], env[i + 1], 1);
        execv(berth, (char *const *)args);
        fprintf(stderr, "berth: cannot run %s: %s", berth, strerror(errno));
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    FILE *f = ok ? o : e;
    rewind(f);
    read_all(fileno(f), out, out_size);
    fclose(o);
    fclose(e);
    if (!ok && out[0] == '\0') {
        if (WIFSIGNALED(status))
            snprintf(out, out_size, "berth: %s %s %s was killed by signal %d", berth, argv[0], argv[1] ? argv[1] : "", WTERMSIG(status));
        else
            snprintf(out, out_size, "berth: %s %s %s exited with status %d without a message", berth, argv[0], argv[1] ? argv[1] : "", WEXITSTATUS(status));
    }
    return ok ? 0 : -1;
}

int berth_run_hook(const struct berth_args *a, const char *kind, const char *const env[], char *out, size_t out_size)
{
    if (a->hook[0] != '\0' && access(a->hook, X_OK) == 0) {
        char berth[4096 + 8];
        snprintf(berth, sizeof berth, "--berth=%s", a->berth);
        const char *argv[] = { berth, kind, NULL };
        return berth_run(a->hook, argv, env, out, out_size);
    }
    const char *argv[] = { "hook", kind, NULL };
    return berth_run(a->berth, argv, env, out, out_size);
}

int berth_run_submit_check(const struct berth_args *a, const char *const env[], char *out, size_t out_size)
{
    if (a->hook[0] != '\0' && access(a->hook, X_OK) == 0) {
        char berth[4096 + 8];
        snprintf(berth, sizeof berth, "--berth=%s", a->berth);
        const char *argv[] = { berth, "submit-check", NULL };
        return berth_run(a->hook, argv, env, out, out_size);
    }
    const char *argv[] = { "submit-check", NULL };
    return berth_run(a->berth, argv, env, out, out_size);
}
