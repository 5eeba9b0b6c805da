/* The job's allocation on this node, as services/cli/hook.ts allocationOnNode reads it from the
 * prolog's environment (berth_hook.h allocation), for the job's prologue (berth_hook_job.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "berth_hook.h"

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
int num_env(const char *name, double *v)
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
int allocation(double *cpus, double *memory_bytes)
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
