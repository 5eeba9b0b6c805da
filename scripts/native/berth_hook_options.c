/* The request's ContainerOptions (berth_hook.h container_options), read from the environment as
 * services/shared/container-options.ts reads it: -1 for what Node refuses, which goes to it. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "berth_hook.h"
#include "berth_options.h"
#include "berth_utf8.h"

#define MAX_MOUNTS 64

/* absolute() of container-options.ts: an absolute path without '.' or '..', '//' as '/', no trailing '/' */
static int absolute(const char *p, char *out, size_t size)
{
    if (p[0] != '/' || strchr(p, '\n') != NULL)
        return -1;
    for (const char *c = p; *c; ) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return -1;
        c += len;
        if (*c == '/')
            c++;
    }
    size_t o = 0;
    for (const char *c = p; *c; c++) {
        if (*c == '/' && o > 0 && out[o - 1] == '/')
            continue;
        if (o + 1 >= size)
            return -1;
        out[o++] = *c;
    }
    if (o > 1 && out[o - 1] == '/')
        o--;
    out[o] = '\0';
    return 0;
}

static int reserved(const char *t)
{
    static const char *const under[] = { "/.berth", "/proc", "/sys", "/dev" };
    if (strcmp(t, "/") == 0 || strcmp(t, "/etc/passwd") == 0 || strcmp(t, "/etc/group") == 0)
        return 1;
    for (size_t i = 0; i < sizeof under / sizeof under[0]; i++) {
        size_t n = strlen(under[i]);
        if (strncmp(t, under[i], n) == 0 && (t[n] == '\0' || t[n] == '/'))
            return 1;
    }
    return 0;
}

/* TMPFS_OPTIONS's keys, in its order (the order Node writes them in) */
static const char *const tmpfs_keys[] = { "size", "nr_inodes", "mode" };
enum { N_TMPFS_KEYS = sizeof tmpfs_keys / sizeof tmpfs_keys[0] };

/* TMPFS_OPTIONS's valid: the value of key k is of its form */
static int tmpfs_value_ok(int k, const char *v)
{
    size_t n = strlen(v);
    if (k == 0 || k == 1) { /* size, nr_inodes: [1-9][0-9]{0,15}[kmg]? */
        size_t digits = strspn(v, "0123456789");
        return digits >= 1 && digits <= 16 && v[0] != '0' && (n == digits || (n == digits + 1 && strchr("kmgKMG", v[digits]) != NULL));
    }
    /* mode: 0?[0-7]{3} */
    return (n == 3 || (n == 4 && v[0] == '0')) && strspn(v, "01234567") == n;
}

/* a tmpfs's KEY=VALUE flag into opts[key's index]; -1 where Node's TMPFS_OPTIONS refuse it or a key comes twice */
static int tmpfs_option(const char *flag, char opts[N_TMPFS_KEYS][64])
{
    const char *eq = strchr(flag, '=');
    if (eq == NULL || strlen(flag) >= 64)
        return -1;
    for (int k = 0; k < N_TMPFS_KEYS; k++) {
        if (strlen(tmpfs_keys[k]) != (size_t)(eq - flag) || strncmp(flag, tmpfs_keys[k], (size_t)(eq - flag)) != 0)
            continue;
        if (!tmpfs_value_ok(k, eq + 1))
            return -1;
        if (opts[k][0] != '\0' && strcmp(opts[k], flag) != 0)
            return -1;
        snprintf(opts[k], 64, "%s", flag);
        return 0;
    }
    return -1;
}

/* mountFlags(): FLAGS joined with '+': ro or rw, and for a bind one propagation (rbind allowed
 * and meaningless); a tmpfs also takes nosuid and nodev (it is both anyway) and its KEY=VALUE
 * options (tmpfs_option, into opts); -1 for what Node refuses */
static int mount_flags(const char *text, int tmpfs, int *read_only, const char **propagation, char opts[N_TMPFS_KEYS][64])
{
    static const char *const props[] = { "private", "rprivate", "slave", "rslave" };
    *read_only = -1;
    *propagation = "";
    memset(opts, 0, sizeof(char[N_TMPFS_KEYS][64]));
    char buf[256];
    if (strlen(text) >= sizeof buf)
        return -1;
    snprintf(buf, sizeof buf, "%s", text);
    for (char *flag = buf, *next; flag != NULL; flag = next) {
        char *plus = strchr(flag, '+');
        next = plus ? plus + 1 : NULL;
        if (plus)
            *plus = '\0';
        if (strcmp(flag, "ro") == 0 || strcmp(flag, "rw") == 0) {
            int ro = strcmp(flag, "ro") == 0;
            if (*read_only >= 0 && *read_only != ro)
                return -1;
            *read_only = ro;
            continue;
        }
        if (tmpfs && (strcmp(flag, "nosuid") == 0 || strcmp(flag, "nodev") == 0))
            continue;
        if (tmpfs && strchr(flag, '=') != NULL) {
            if (tmpfs_option(flag, opts) != 0)
                return -1;
            continue;
        }
        if (tmpfs || strcmp(flag, "rbind") == 0) {
            if (tmpfs)
                return -1;
            continue;
        }
        const char *p = NULL;
        for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
            if (strcmp(flag, props[i]) == 0)
                p = props[i];
        if (p == NULL || (**propagation && strcmp(*propagation, p) != 0))
            return -1; /* '' , unknown, refused, or a second propagation */
        *propagation = p;
    }
    if (*read_only < 0)
        *read_only = 0;
    return 0;
}

/*
 * Each item of the comma-separated TEXT, trimmed into ITEM (SIZE bytes), given to EACH in
 * order; 0 for TEXT of white space only; -1 for TEXT that does not trim (trim), an empty item,
 * one that does not trim, or EACH's -1.
 */
static int each_item(const char *text, char *item, size_t size, int (*each)(char *item, void *ctx), void *ctx)
{
    static char t[65536];
    if (trim(text, strlen(text), t, sizeof t) != 0)
        return -1;
    if (t[0] == '\0')
        return 0;
    for (const char *raw = t; raw != NULL; ) {
        const char *comma = strchr(raw, ',');
        size_t len = comma ? (size_t)(comma - raw) : strlen(raw);
        if (trim(raw, len, item, size) != 0 || item[0] == '\0' || each(item, ctx) != 0)
            return -1;
        raw = comma ? comma + 1 : NULL;
    }
    return 0;
}

struct mount_list {
    struct pb_buf *o;
    int count;
    char targets[MAX_MOUNTS][4096];
};

/* one SPEC of parseMounts, SRC[:DST[:FLAGS]] or tmpfs:DST[:FLAGS], as a Mount message */
static int mount(char *spec, void *ctx)
{
    struct mount_list *l = ctx;
    char src[4096], dst[4096];
    if (l->count == MAX_MOUNTS)
        return -1;
    char *f[4] = { spec, NULL, NULL, NULL };
    int nf = 1;
    for (char *c = spec; *c; c++) {
        if (*c != ':')
            continue;
        if (nf == 3)
            return -1; /* too many ':' */
        *c = '\0';
        f[nf++] = c + 1;
    }
    for (int i = 1; i < nf; i++)
        if (f[i][0] == '\0')
            return -1;
    int tmpfs = strcmp(f[0], "tmpfs") == 0, read_only;
    const char *propagation;
    char opts[N_TMPFS_KEYS][64];
    if ((tmpfs && nf < 2) || mount_flags(nf == 3 ? f[2] : "rw", tmpfs, &read_only, &propagation, opts) != 0)
        return -1;
    if (tmpfs)
        snprintf(src, sizeof src, "tmpfs");
    else if (absolute(f[0], src, sizeof src) != 0)
        return -1;
    if (absolute(nf > 1 ? f[1] : f[0], dst, sizeof dst) != 0 || reserved(dst))
        return -1;
    for (int i = 0; i < l->count; i++)
        if (strcmp(l->targets[i], dst) == 0)
            return -1;
    snprintf(l->targets[l->count++], sizeof l->targets[0], "%s", dst);
    struct pb_buf m = { 0 };
    pb_string(&m, 1, src);
    pb_string(&m, 2, dst);
    pb_uint(&m, 3, (unsigned)read_only);
    pb_string(&m, 4, propagation);
    for (int k = 0; k < N_TMPFS_KEYS; k++)
        if (opts[k][0] != '\0')
            pb_string(&m, 5, opts[k]);
    pb_message(l->o, 1, &m);
    pb_free(&m);
    return 0;
}

/* parseMounts: Mount messages (field 1 of ContainerOptions) into o; -1 where Node refuses the text */
static int mounts(const char *text, struct pb_buf *o)
{
    static struct mount_list list;
    list.o = o;
    list.count = 0;
    char spec[8192];
    return each_item(text, spec, sizeof spec, mount, &list);
}

struct name_list {
    struct pb_buf *o;
    char seen[65536]; /* ",A,B," */
    size_t seen_len;
};

/* one NAME of parseEnvNames: a variable's name, sent the first time it comes */
static int env_name(char *name, void *ctx)
{
    struct name_list *l = ctx;
    if (!(isalpha((unsigned char)name[0]) || name[0] == '_'))
        return -1;
    for (const char *c = name; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_') || (unsigned char)*c >= 0x80)
            return -1;
    char key[4100];
    snprintf(key, sizeof key, ",%s,", name);
    if (strstr(l->seen, key) == NULL) {
        pb_string(l->o, 3, name);
        size_t k = strlen(name);
        if (l->seen_len + k + 2 >= sizeof l->seen)
            return -1;
        if (l->seen_len == 0)
            l->seen[l->seen_len++] = ',';
        memcpy(l->seen + l->seen_len, name, k);
        l->seen_len += k;
        l->seen[l->seen_len++] = ',';
        l->seen[l->seen_len] = '\0';
    }
    return 0;
}

/* parseEnvNames: env_names (field 3), each once, in order */
static int env_names(const char *text, struct pb_buf *o)
{
    static struct name_list list;
    list.o = o;
    list.seen_len = 0;
    list.seen[0] = '\0';
    char name[4096];
    return each_item(text, name, sizeof name, env_name, &list);
}

/* parseToggle as the Toggle enum: 0 unspecified, 1 on, 2 off; -1 not a yes/no value */
static int toggle(const char *name)
{
    char t[16];
    if (trim_env(name, t, sizeof t) != 0)
        return -1;
    for (char *c = t; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    static const char *const on[] = { "1", "true", "yes", "on", "y" }, *const off[] = { "0", "false", "no", "off", "n" };
    if (t[0] == '\0')
        return 0;
    for (int i = 0; i < 5; i++) {
        if (strcmp(t, on[i]) == 0) return 1;
        if (strcmp(t, off[i]) == 0) return 2;
    }
    return -1;
}

/* PREFIX + NAME: the step hooks read BERTH_CONTAINER_*, the job's prolog SPANK_BERTH_CONTAINER_* */
static const char *option_var(const char *prefix, const char *name)
{
    static char buf[8][128];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, sizeof buf[0], "%s%s", prefix, name);
    return b;
}

static const char *const namespaces[] = { "net", "ipc", "uts" };

/* one NS of parseUnshare into GIVEN[its index in namespaces] */
static int namespace(char *ns, void *given)
{
    int i = 0;
    while (i < 3 && strcmp(ns, namespaces[i]) != 0)
        i++;
    if (i == 3)
        return -1;
    ((int *)given)[i] = 1;
    return 0;
}

/* parseUnshare: NS[,NS...] of net, ipc, uts, sent in that order, each once; -1 for anything else */
static int unshare(const char *name, struct pb_buf *o)
{
    char t[256];
    if (trim_env(name, t, sizeof t) != 0)
        return -1; /* longer than any list of the three, or not trimmed as Node trims */
    int given[3] = { 0, 0, 0 };
    char ns[16];
    if (each_item(t, ns, sizeof ns, namespace, given) != 0)
        return -1;
    for (int i = 0; i < 3; i++)
        if (given[i])
            pb_string(o, 8, namespaces[i]);
    return 0;
}

/* optionsFromEnv(env, PREFIX) as the ContainerOptions message */
int container_options(struct pb_buf *o, const char *prefix)
{
    static const char *const vars[] = { BERTH_VAR_MOUNTS, BERTH_VAR_WORKDIR, BERTH_VAR_ENV, BERTH_VAR_NAME };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (!utf8_ok(env_or(option_var(prefix, vars[i]), "")))
            return -1;
    char workdir[4096] = "", wd[4096], name[128];
    if (mounts(env_or(option_var(prefix, BERTH_VAR_MOUNTS), ""), o) != 0)
        return -1;
    if (trim_env(option_var(prefix, BERTH_VAR_WORKDIR), wd, sizeof wd) != 0 || (wd[0] && absolute(wd, workdir, sizeof workdir) != 0))
        return -1;
    pb_string(o, 2, workdir);
    if (env_names(env_or(option_var(prefix, BERTH_VAR_ENV), ""), o) != 0)
        return -1;
    if (trim_env(option_var(prefix, BERTH_VAR_NAME), name, sizeof name) != 0)
        return -1;
    /* NAME[:FLAG], pyxis's flags; auto is the default and not sent */
    const char *name_flag = "";
    char *colon = strchr(name, ':');
    if (colon != NULL) {
        *colon = '\0';
        const char *flag = colon + 1;
        if (strcmp(flag, "create") == 0 || strcmp(flag, "exec") == 0 || strcmp(flag, "no_exec") == 0)
            name_flag = flag;
        else if (strcmp(flag, "auto") != 0)
            return -1;
        if (name[0] == '\0')
            return -1;
    }
    size_t n = strlen(name);
    if (n > 64 || (n > 0 && !isalnum((unsigned char)name[0])))
        return -1;
    for (const char *c = name; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_' || *c == '.' || *c == '-') || (unsigned char)*c >= 0x80)
            return -1;
    pb_string(o, 4, name);
    pb_string(o, 7, name_flag);
    int home = toggle(option_var(prefix, BERTH_VAR_MOUNT_HOME)), ro = toggle(option_var(prefix, BERTH_VAR_READONLY));
    if (home < 0 || ro < 0)
        return -1;
    pb_uint(o, 5, (unsigned)home);
    pb_uint(o, 6, (unsigned)ro);
    return unshare(option_var(prefix, BERTH_VAR_UNSHARE), o);
}
