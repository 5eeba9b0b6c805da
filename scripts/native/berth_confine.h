/* The confinement of a container's process, copied onto a task that joins the container
 * natively (berth_confine.c). No Slurm headers: test/native/confine-probe.c links it too. */
#ifndef BERTH_CONFINE_H
#define BERTH_CONFINE_H
#include <stddef.h>
#include <stdint.h>

#define BERTH_MAX_FILTERS 32

struct berth_filter {
    unsigned short len;       /* instructions */
    void *insns;              /* struct sock_filter[len] */
    unsigned long flags;      /* SECCOMP_FILTER_FLAG_LOG when the kernel reports it */
};

struct berth_confinement {
    long pid;                 /* the process it was copied from */
    int nfilters;             /* in the kernel's index order: 0 is the oldest */
    struct berth_filter filters[BERTH_MAX_FILTERS];
    uint64_t cap_bnd;         /* that process's capability bounding set */
    uint64_t cap_inh;         /* and its inheritable set */
};

/*
 * As root with CAP_SYS_ADMIN, in a process that is itself not under seccomp: reads pid's
 * seccomp filters (classic BPF, PTRACE_SECCOMP_GET_FILTER, which needs the process in a
 * ptrace-stop: it is seized, interrupted for the copy and detached again) and its bounding
 * and inheritable capability sets. 0, or -1 with the reason in err.
 */
int berth_confine_copy(long pid, struct berth_confinement *c, char *err, size_t errlen);

/*
 * In the process to confine, as root, after no_new_privs is set and as the last privileged
 * act: drops every capability from the bounding and inheritable sets that pid did not have,
 * clears the ambient set, then installs the filters in the order pid got them. 0, or -1 with
 * the reason in err (the process may then be partly confined and must not go on to exec).
 */
int berth_confine_apply(const struct berth_confinement *c, char *err, size_t errlen);

void berth_confine_free(struct berth_confinement *c);
#endif
