/*
 * The confinement a task gets when it joins a container natively: exactly the container's.
 *
 * A process that docker exec starts in a berth container runs under the seccomp filter runc
 * compiled from the container's profile (Docker's default, as dockerd generates it for the
 * container's capabilities, or the site's --seccomp-profile) and with the container's
 * capability bounding set (empty: CapDrop ALL). A native task is forked by slurmstepd on the
 * host instead, so it gets neither by itself. Rather than derive the profile again (Docker's
 * version, the site's profile, the capabilities and the kernel's architecture all change the
 * program), the filter is copied from the container's own first process:
 * PTRACE_SECCOMP_GET_FILTER hands out each of its classic BPF programs, index 0 the oldest.
 * The copy is taken once per step and node in slurmstepd (root, unconfined) and kept in its
 * memory; every task slurmstepd forks afterwards inherits it and installs it as the last
 * thing it does as root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "berth_confine.h"

/* another slurmstepd of the node may be copying from the same container at this moment (its
 * steps start together): wait that long for it to let go */
#define SEIZE_WAIT_MS 5000
/* for the interrupted process to stop (it is stopped only while the filters are read) */
#define STOP_WAIT_MS 5000

static void say(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

static void nap_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

struct proc_status {
    int seccomp;              /* -1: no Seccomp: line */
    long tracer;
    uint64_t cap_bnd, cap_inh;
    int have_bnd, have_inh;
};

static int read_status(long pid, struct proc_status *s)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    memset(s, 0, sizeof *s);
    s->seccomp = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long long v;
        if (sscanf(line, "Seccomp: %d", &s->seccomp) == 1)
            continue;
        if (sscanf(line, "TracerPid: %ld", &s->tracer) == 1)
            continue;
        if (sscanf(line, "CapBnd: %llx", &v) == 1) {
            s->cap_bnd = v;
            s->have_bnd = 1;
        } else if (sscanf(line, "CapInh: %llx", &v) == 1) {
            s->cap_inh = v;
            s->have_inh = 1;
        }
    }
    fclose(f);
    return 0;
}

void berth_confine_free(struct berth_confinement *c)
{
    for (int i = 0; i < c->nfilters; i++)
        free(c->filters[i].insns);
    memset(c, 0, sizeof *c);
}

/* reads every filter of the stopped tracee pid into c */
static int read_filters(long pid, struct berth_confinement *c, char *err, size_t n)
{
    for (unsigned long i = 0;; i++) {
        errno = 0;
        long len = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)i, NULL);
        if (len < 0 && errno == ENOENT && i > 0)
            return 0;
        if (len < 0) {
            int e = errno;
            say(err, n, "cannot read seccomp filter %lu of pid %ld: %s%s", i, pid, strerror(e),
                e == EACCES ? " (slurmstepd needs CAP_SYS_ADMIN and must not run under seccomp itself)"
                : e == EINVAL || e == ENOENT ? " (the process has no seccomp filter)"
                : e == EMEDIUMTYPE ? " (an eBPF filter, which cannot be copied)"
                : e == EIO ? " (the kernel lacks CONFIG_CHECKPOINT_RESTORE)" : "");
            return -1;
        }
        if (len == 0 || len > BPF_MAXINSNS) {
            say(err, n, "seccomp filter %lu of pid %ld has %ld instructions", i, pid, len);
            return -1;
        }
        if (c->nfilters == BERTH_MAX_FILTERS) {
            say(err, n, "pid %ld has more than %d seccomp filters", pid, BERTH_MAX_FILTERS);
            return -1;
        }
        struct sock_filter *insns = calloc((size_t)len, sizeof *insns);
        if (insns == NULL) {
            say(err, n, "out of memory copying a seccomp filter");
            return -1;
        }
        long got = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)i, insns);
        if (got != len) {
            say(err, n, "seccomp filter %lu of pid %ld changed while read (%ld, then %ld instructions): %s", i, pid, len, got, strerror(errno));
            free(insns);
            return -1;
        }
        struct __ptrace_seccomp_metadata md = { .filter_off = i, .flags = 0 };
        if (ptrace(PTRACE_SECCOMP_GET_METADATA, pid, (void *)sizeof md, &md) < 0) {
            say(err, n, "cannot read the flags of seccomp filter %lu of pid %ld: %s", i, pid, strerror(errno));
            free(insns);
            return -1;
        }
        c->filters[c->nfilters].len = (unsigned short)len;
        c->filters[c->nfilters].insns = insns;
        c->filters[c->nfilters].flags = (unsigned long)md.flags & SECCOMP_FILTER_FLAG_LOG;
        c->nfilters++;
    }
}

int berth_confine_copy(long pid, struct berth_confinement *c, char *err, size_t n)
{
    memset(c, 0, sizeof *c);
    c->pid = pid;
    struct proc_status st;
    if (read_status(pid, &st) != 0) {
        say(err, n, "pid %ld is gone: %s", pid, strerror(errno));
        return -1;
    }
    if (st.seccomp != SECCOMP_MODE_FILTER) {
        say(err, n, "pid %ld runs without a seccomp filter (Seccomp: %d), so there is none to copy", pid, st.seccomp);
        return -1;
    }
    if (!st.have_bnd || !st.have_inh) {
        say(err, n, "no CapBnd/CapInh in /proc/%ld/status", pid);
        return -1;
    }
    c->cap_bnd = st.cap_bnd;
    c->cap_inh = st.cap_inh;

    /* no PTRACE_O_EXITKILL: if slurmstepd dies now, the process is detached, not killed */
    int waited = 0, raced = 0;
    while (ptrace(PTRACE_SEIZE, pid, NULL, NULL) != 0) {
        int e = errno;
        struct proc_status now;
        /* another step's copy holds it, or has just let go of it (EPERM, then no tracer by the
         * time the status is read): wait for it, within SEIZE_WAIT_MS */
        if (e == EPERM && waited < SEIZE_WAIT_MS && read_status(pid, &now) == 0 && (now.tracer != 0 || raced++ < 10)) {
            nap_ms(1);
            waited++;
            continue;
        }
        if (e == EPERM && read_status(pid, &now) == 0 && now.tracer != 0)
            say(err, n, "pid %ld is traced by pid %ld, so its seccomp filter cannot be read", pid, now.tracer);
        else
            say(err, n, "cannot attach to pid %ld to read its seccomp filter: %s", pid, strerror(e));
        return -1;
    }
    int rc = -1, inject = 0;
    if (ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) != 0) {
        say(err, n, "cannot stop pid %ld to read its seccomp filter: %s", pid, strerror(errno));
        goto detach;
    }
    for (int ms10 = 0;; ms10++) {
        int status = 0;
        pid_t w = waitpid((pid_t)pid, &status, __WALL | WNOHANG);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            say(err, n, "waiting for pid %ld to stop: %s", pid, strerror(errno));
            goto detach;
        }
        if (w == (pid_t)pid && (WIFEXITED(status) || WIFSIGNALED(status))) {
            say(err, n, "pid %ld ended while its seccomp filter was read", pid);
            return -1;
        }
        if (w == (pid_t)pid && WIFSTOPPED(status)) {
            /* the interrupt (PTRACE_EVENT_STOP), or a signal arriving first: then that
             * signal is handed back at the detach */
            if ((status >> 16) != PTRACE_EVENT_STOP && WSTOPSIG(status) != SIGTRAP)
                inject = WSTOPSIG(status);
            break;
        }
        if (ms10 >= STOP_WAIT_MS * 10) {
            say(err, n, "pid %ld did not stop within %d ms (is the container paused?)", pid, STOP_WAIT_MS);
            goto detach;
        }
        struct timespec ts = { 0, 100000L };
        nanosleep(&ts, NULL);
    }
    rc = read_filters(pid, c, err, n);
detach:
    if (ptrace(PTRACE_DETACH, pid, NULL, (void *)(long)inject) != 0 && rc == 0) {
        say(err, n, "cannot detach from pid %ld: %s", pid, strerror(errno));
        rc = -1;
    }
    if (rc != 0)
        berth_confine_free(c);
    return rc;
}

int berth_confine_apply(const struct berth_confinement *c, char *err, size_t n)
{
    if (c->nfilters <= 0) {
        say(err, n, "no seccomp filter was copied from the container");
        return -1;
    }
    for (int cap = 0; cap < 64; cap++) {
        int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (in < 0)
            break; /* past the kernel's last capability */
        if (in == 1 && !(c->cap_bnd & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            say(err, n, "cannot drop capability %d from the bounding set: %s", cap, strerror(errno));
            return -1;
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        say(err, n, "cannot clear the ambient capabilities: %s", strerror(errno));
        return -1;
    }
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) != 0) {
        say(err, n, "capget: %s", strerror(errno));
        return -1;
    }
    data[0].inheritable &= (uint32_t)c->cap_inh;
    data[1].inheritable &= (uint32_t)(c->cap_inh >> 32);
    if (syscall(SYS_capset, &hdr, data) != 0) {
        say(err, n, "cannot limit the inheritable capabilities: %s", strerror(errno));
        return -1;
    }
    /* index 0 is the oldest filter: installed first, so the stack is the container's */
    for (int i = 0; i < c->nfilters; i++) {
        struct sock_fprog prog = { .len = c->filters[i].len, .filter = c->filters[i].insns };
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, c->filters[i].flags, &prog) != 0) {
            say(err, n, "cannot install seccomp filter %d of %d: %s", i + 1, c->nfilters, strerror(errno));
            return -1;
        }
    }
    return 0;
}
