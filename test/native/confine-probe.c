/*
 * A test driver for scripts/native/berth_confine.c (the tests build it with gcc, as root):
 *
 *   confine-probe dump PID                  the seccomp filters of PID as berth copies them:
 *                                           "filters=N", then "filter=I len=L flags=F HEX"
 *   confine-probe run PID UID GID -- CMD..  copies PID's confinement and takes it on as a
 *                                           native task does (no_new_privs, then the copy),
 *                                           then drops to UID:GID with the calls slurmstepd
 *                                           makes after the plugin's hook, and execs CMD
 *   confine-probe hold PID SECONDS          attaches to PID (PTRACE_SEIZE, not stopping it),
 *                                           prints "held" and keeps it SECONDS
 *   confine-probe order                     stacks two filters in a child that answer one
 *                                           syscall with different errors, copies them and
 *                                           prints what the child and the copy answer
 *   confine-probe compare PID1 PID2|none    runs both processes' filter stacks (or none) in a
 *                                           classic BPF interpreter over every syscall number
 *                                           of x86_64, x32 and i386 with sample arguments, and
 *                                           prints "inputs=N differ=D" and the first few that
 *                                           differ: runc builds a container's filter anew for
 *                                           each process, and the order of its architecture
 *                                           checks varies, so bytes may differ where the
 *                                           answers do not
 *   confine-probe bench PID N               mean time of a copy from PID (a step's cost) and
 *                                           of taking it on in a forked child (a task's),
 *                                           over N rounds, in microseconds
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
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

static int dump(long pid)
{
    struct berth_confinement c;
    char err[512];
    if (berth_confine_copy(pid, &c, err, sizeof err) != 0) {
        fprintf(stderr, "confine-probe: %s\n", err);
        return 1;
    }
    printf("filters=%d capbnd=%016llx capinh=%016llx\n", c.nfilters, (unsigned long long)c.cap_bnd, (unsigned long long)c.cap_inh);
    for (int i = 0; i < c.nfilters; i++) {
        printf("filter=%d len=%u flags=%lu ", i, c.filters[i].len, c.filters[i].flags);
        const unsigned char *b = c.filters[i].insns;
        for (size_t k = 0; k < (size_t)c.filters[i].len * sizeof(struct sock_filter); k++)
            printf("%02x", b[k]);
        printf("\n");
    }
    berth_confine_free(&c);
    return 0;
}

static int run(long pid, uid_t uid, gid_t gid, char **cmd)
{
    struct berth_confinement c;
    char err[512];
    if (berth_confine_copy(pid, &c, err, sizeof err) != 0) {
        fprintf(stderr, "confine-probe: %s\n", err);
        return 125;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || berth_confine_apply(&c, err, sizeof err) != 0) {
        fprintf(stderr, "confine-probe: %s\n", err);
        return 125;
    }
    /* slurmstepd 22.05 after spank_task_init_privileged: _drop_privileges, then _become_user */
    gid_t groups[1] = { gid };
    if (setgroups(1, groups) != 0 || setegid(gid) != 0 || seteuid(uid) != 0 || seteuid(0) != 0 || setegid(0) != 0 ||
        setregid(gid, gid) != 0 || setreuid(uid, uid) != 0) {
        fprintf(stderr, "confine-probe: dropping to %u:%u under the copied filter: %s\n", uid, gid, strerror(errno));
        return 125;
    }
    execvp(cmd[0], cmd);
    fprintf(stderr, "confine-probe: %s: %s\n", cmd[0], strerror(errno));
    return 127;
}

static int hold(long pid, int seconds)
{
    if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) != 0) {
        fprintf(stderr, "confine-probe: PTRACE_SEIZE %ld: %s\n", pid, strerror(errno));
        return 1;
    }
    printf("held\n");
    fflush(stdout);
    sleep((unsigned)seconds);
    return 0;
}

/* a filter answering getppid with ERRNO(err), padded with `pad` no-op loads */
static int install(int err, int pad)
{
    struct sock_filter f[32];
    int n = 0;
    for (int i = 0; i < pad; i++)
        f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = { (unsigned short)n, f };
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

static int answer(void)
{
    errno = 0;
    return syscall(SYS_getppid) < 0 ? errno : 0;
}

static int order(void)
{
    int p[2];
    if (pipe(p) != 0)
        return 1;
    pid_t child = fork();
    if (child == 0) {
        /* oldest: EPERM, 4 instructions; newest: EACCES, 7 */
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if (install(EPERM, 0) != 0 || install(EACCES, 3) != 0)
            _exit(1);
        int a = answer();
        if (write(p[1], &a, sizeof a) != sizeof a)
            _exit(1);
        for (;;)
            pause();
    }
    int original = -1;
    if (read(p[0], &original, sizeof original) != sizeof original) {
        fprintf(stderr, "confine-probe: the child could not stack its filters\n");
        return 1;
    }
    struct berth_confinement c;
    char err[512];
    int rc = berth_confine_copy(child, &c, err, sizeof err);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    if (rc != 0) {
        fprintf(stderr, "confine-probe: %s\n", err);
        return 1;
    }
    printf("filters=%d", c.nfilters);
    for (int i = 0; i < c.nfilters; i++)
        printf(" len%d=%u", i, c.filters[i].len);
    printf(" original=%s", strerrorname_np(original));
    fflush(stdout);
    pid_t copy = fork();
    if (copy == 0) {
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if (berth_confine_apply(&c, err, sizeof err) != 0) {
            fprintf(stderr, "confine-probe: %s\n", err);
            _exit(1);
        }
        printf(" copy=%s\n", strerrorname_np(answer()));
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(copy, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* classic BPF as the kernel runs it for seccomp (the instructions seccomp_check_filter allows) */
static uint32_t run_bpf(const struct sock_filter *f, unsigned len, const struct seccomp_data *d)
{
    uint32_t A = 0, X = 0, M[BPF_MEMWORDS] = { 0 };
    const unsigned char *data = (const unsigned char *)d;
    for (unsigned pc = 0; pc < len; pc++) {
        const struct sock_filter *i = &f[pc];
        uint32_t k = i->k, src = BPF_SRC(i->code) == BPF_X ? X : k;
        switch (BPF_CLASS(i->code)) {
        case BPF_LD:
            switch (BPF_MODE(i->code)) {
            case BPF_ABS: if (k + 4 > sizeof *d) return 0; memcpy(&A, data + k, 4); break;
            case BPF_IMM: A = k; break;
            case BPF_MEM: A = M[k % BPF_MEMWORDS]; break;
            case BPF_LEN: A = sizeof *d; break;
            default: return 0;
            }
            break;
        case BPF_LDX:
            switch (BPF_MODE(i->code)) {
            case BPF_IMM: X = k; break;
            case BPF_MEM: X = M[k % BPF_MEMWORDS]; break;
            case BPF_LEN: X = sizeof *d; break;
            default: return 0;
            }
            break;
        case BPF_ST: M[k % BPF_MEMWORDS] = A; break;
        case BPF_STX: M[k % BPF_MEMWORDS] = X; break;
        case BPF_ALU:
            switch (BPF_OP(i->code)) {
            case BPF_ADD: A += src; break;
            case BPF_SUB: A -= src; break;
            case BPF_MUL: A *= src; break;
            case BPF_DIV: if (src == 0) return 0; A /= src; break;
            case BPF_MOD: if (src == 0) return 0; A %= src; break;
            case BPF_AND: A &= src; break;
            case BPF_OR: A |= src; break;
            case BPF_XOR: A ^= src; break;
            case BPF_LSH: A = src >= 32 ? 0 : A << src; break;
            case BPF_RSH: A = src >= 32 ? 0 : A >> src; break;
            case BPF_NEG: A = -A; break;
            default: return 0;
            }
            break;
        case BPF_JMP:
            if (BPF_OP(i->code) == BPF_JA) { pc += k; break; }
            {
                int t;
                switch (BPF_OP(i->code)) {
                case BPF_JEQ: t = A == src; break;
                case BPF_JGT: t = A > src; break;
                case BPF_JGE: t = A >= src; break;
                case BPF_JSET: t = (A & src) != 0; break;
                default: return 0;
                }
                pc += t ? i->jt : i->jf;
            }
            break;
        case BPF_RET: return BPF_RVAL(i->code) == BPF_A ? A : k;
        case BPF_MISC: if (BPF_MISCOP(i->code) == BPF_TAX) X = A; else A = X; break;
        }
    }
    return 0;
}

/* the answer of a stack of filters: every filter runs, the highest-precedence action wins
 * (SECCOMP_RET_ACTION_FULL compared as signed), the newest among equals */
static uint32_t run_stack(const struct berth_confinement *c, const struct seccomp_data *d)
{
    uint32_t ret = SECCOMP_RET_ALLOW;
    for (int i = c->nfilters - 1; i >= 0; i--) {
        uint32_t cur = run_bpf(c->filters[i].insns, c->filters[i].len, d);
        if ((int32_t)(cur & SECCOMP_RET_ACTION_FULL) < (int32_t)(ret & SECCOMP_RET_ACTION_FULL))
            ret = cur;
    }
    return ret;
}

static int compare(long pid1, const char *second)
{
    struct berth_confinement a, b;
    char err[512];
    memset(&b, 0, sizeof b);
    if (berth_confine_copy(pid1, &a, err, sizeof err) != 0 ||
        (strcmp(second, "none") != 0 && berth_confine_copy(strtol(second, NULL, 10), &b, err, sizeof err) != 0)) {
        fprintf(stderr, "confine-probe: %s\n", err);
        return 1;
    }
    static const uint64_t args[] = {
        0, 1, 8, 0x20000, 0x20008, 0xffffffff, 0xffffffffffffffffULL, 0x100000000ULL,
        0x80, 0x20000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000,
        0x11, 16, 40, 0x7e020000, 0x1200011, 0x8000,
    };
    static const struct { uint32_t arch; uint32_t base; } arches[] = {
        { AUDIT_ARCH_X86_64, 0 }, { AUDIT_ARCH_X86_64, 0x40000000 }, { AUDIT_ARCH_I386, 0 }, { AUDIT_ARCH_AARCH64, 0 },
    };
    long inputs = 0, differ = 0;
    for (size_t ar = 0; ar < sizeof arches / sizeof arches[0]; ar++)
        for (uint32_t nr = 0; nr < 1024; nr++)
            for (size_t x = 0; x < sizeof args / sizeof args[0]; x++)
                for (int which = 0; which < 3; which++) {
                    struct seccomp_data d;
                    memset(&d, 0, sizeof d);
                    d.nr = (int)(arches[ar].base + nr);
                    d.arch = arches[ar].arch;
                    d.args[which] = args[x];
                    uint32_t ra = run_stack(&a, &d), rb = run_stack(&b, &d);
                    inputs++;
                    if (ra != rb && ++differ <= 5)
                        printf("differ arch=%08x nr=%d arg%d=%llx: %08x vs %08x\n", d.arch, d.nr, which, (unsigned long long)args[x], ra, rb);
                }
    printf("inputs=%ld differ=%ld\n", inputs, differ);
    berth_confine_free(&a);
    berth_confine_free(&b);
    return 0;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* fork, (take on c), _exit, wait: the mean over n rounds */
static double fork_round_us(const struct berth_confinement *c, int n)
{
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0) {
            char err[512];
            prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            _exit(c != NULL && berth_confine_apply(c, err, sizeof err) != 0 ? 1 : 0);
        }
        int status = 0;
        waitpid(p, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return -1;
    }
    return (now_us() - t0) / n;
}

static int bench(long pid, int n)
{
    struct berth_confinement c;
    char err[512];
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        if (berth_confine_copy(pid, &c, err, sizeof err) != 0) {
            fprintf(stderr, "confine-probe: %s\n", err);
            return 1;
        }
        if (i + 1 < n)
            berth_confine_free(&c);
    }
    double copy = (now_us() - t0) / n;
    double plain = fork_round_us(NULL, n), confined = fork_round_us(&c, n);
    if (plain < 0 || confined < 0) {
        fprintf(stderr, "confine-probe: a child could not take on the copy\n");
        return 1;
    }
    printf("copy_us=%.1f apply_us=%.1f fork_us=%.1f rounds=%d\n", copy, confined - plain, plain, n);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "dump") == 0)
        return dump(strtol(argv[2], NULL, 10));
    if (argc >= 7 && strcmp(argv[1], "run") == 0 && strcmp(argv[5], "--") == 0)
        return run(strtol(argv[2], NULL, 10), (uid_t)strtoul(argv[3], NULL, 10), (gid_t)strtoul(argv[4], NULL, 10), argv + 6);
    if (argc == 4 && strcmp(argv[1], "hold") == 0)
        return hold(strtol(argv[2], NULL, 10), atoi(argv[3]));
    if (argc == 2 && strcmp(argv[1], "order") == 0)
        return order();
    if (argc == 4 && strcmp(argv[1], "compare") == 0)
        return compare(strtol(argv[2], NULL, 10), argv[3]);
    if (argc == 4 && strcmp(argv[1], "bench") == 0)
        return bench(strtol(argv[2], NULL, 10), atoi(argv[3]));
    fprintf(stderr, "usage: confine-probe dump PID | run PID UID GID -- CMD... | hold PID SECONDS | order | compare PID1 PID2|none | bench PID N\n");
    return 2;
}
