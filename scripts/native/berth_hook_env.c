/* berth-hook's environment (berth_hook.h): the variables read as the Node hook reads them, and
 * the node and admin socket the hook speaks to. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "berth_hook.h"

const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v ? v : dflt;
}

/*
 * JavaScript's trim() into out: ASCII white space here; a value with other bytes at either
 * end (it may begin or end with Unicode white space, which trim() also takes) gives -1.
 */
int trim(const char *s, size_t n, char *out, size_t size)
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

int trim_env(const char *name, char *out, size_t size)
{
    const char *v = env_or(name, "");
    return trim(v, strlen(v), out, size);
}

/* Number(SLURM_JOB_UID) as a uint32, when it is plain digits */
int uint32_env(const char *name, uint64_t *v)
{
    const char *s = env_or(name, "");
    if (*s == '\0' || strlen(s) > 10 || strspn(s, "0123456789") != strlen(s))
        return -1;
    *v = strtoull(s, NULL, 10);
    return *v <= UINT32_MAX ? 0 : -1;
}

int matches(const char *s, int step)
{
    size_t n = strlen(s);
    if (step && strcmp(s, "batch") == 0)
        return 1;
    return n >= 1 && n <= 20 && strspn(s, "0123456789") == n;
}

/* agentTarget() of agent-client.ts as root: the node (SLURMD_NODENAME, else the short host name) and its admin socket */
int target(char *socket_path, size_t size)
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

/* secondsFromEnv(NAME, DEFAULT) of hook-retry.ts in ms; -1 for a timeout under a second (0 ms in Node: the Node hook's affair) */
long timeout_env(const char *name, long default_ms)
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
