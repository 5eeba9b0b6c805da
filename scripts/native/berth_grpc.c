/* A unary gRPC call over a unix socket with libnghttp2 (berth_grpc.h). */
#include <errno.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "berth_grpc.h"

#define MAX_RESPONSE (8u * 1024 * 1024) /* as the Node client's grpc.max_receive_message_length */

struct call {
    int fd;
    int32_t stream;
    const uint8_t *req;
    size_t req_len, req_sent;
    int closed;             /* the stream ended */
    uint32_t reset;         /* its RST_STREAM code, when reset */
    int have_status;
    int http_status;
    uint8_t *data;          /* the DATA frames' bytes */
    size_t data_len;
    int too_big;
    struct grpc_result *r;
};

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static ssize_t on_send(nghttp2_session *s, const uint8_t *p, size_t n, int flags, void *u)
{
    (void)s;
    (void)flags;
    struct call *c = u;
    for (;;) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w >= 0)
            return w;
        if (errno != EINTR)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
}

static ssize_t read_request(nghttp2_session *s, int32_t id, uint8_t *buf, size_t n, uint32_t *flags, nghttp2_data_source *src, void *u)
{
    (void)s;
    (void)id;
    (void)src;
    struct call *c = u;
    size_t left = c->req_len - c->req_sent;
    size_t k = left < n ? left : n;
    memcpy(buf, c->req + c->req_sent, k);
    c->req_sent += k;
    if (c->req_sent == c->req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)k;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* grpc-message is percent-encoded (gRPC over HTTP/2); a malformed escape stays as it is */
static void percent_decode(const uint8_t *p, size_t n, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < size; i++) {
        int hi, lo;
        if (p[i] == '%' && i + 2 < n && (hi = hexval(p[i + 1])) >= 0 && (lo = hexval(p[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = (char)p[i];
        }
    }
    out[o] = '\0';
}

static void copy_value(const uint8_t *v, size_t n, char *out, size_t size)
{
    size_t k = n < size - 1 ? n : size - 1;
    memcpy(out, v, k);
    out[k] = '\0';
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen, const uint8_t *v, size_t vlen, uint8_t flags, void *u)
{
    (void)s;
    (void)flags;
    struct call *c = u;
    if (f->hd.type != NGHTTP2_HEADERS || f->hd.stream_id != c->stream)
        return 0;
    char num[16];
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        copy_value(v, vlen, num, sizeof num);
        c->http_status = atoi(num);
    } else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        copy_value(v, vlen, num, sizeof num);
        c->r->status = atoi(num);
        c->have_status = 1;
    } else if (nlen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        percent_decode(v, vlen, c->r->message, sizeof c->r->message);
    } else if (nlen == 18 && memcmp(name, "x-berth-error-code", 18) == 0) {
        copy_value(v, vlen, c->r->berth_code, sizeof c->r->berth_code);
    } else if (nlen == 13 && memcmp(name, "x-berth-fault", 13) == 0) {
        copy_value(v, vlen, c->r->fault, sizeof c->r->fault);
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *p, size_t n, void *u)
{
    (void)s;
    (void)flags;
    struct call *c = u;
    if (id != c->stream || c->too_big)
        return 0;
    if (c->data_len + n > MAX_RESPONSE + 5) {
        c->too_big = 1;
        return 0;
    }
    uint8_t *d = realloc(c->data, c->data_len + n);
    if (d == NULL) {
        c->too_big = 1;
        return 0;
    }
    memcpy(d + c->data_len, p, n);
    c->data = d;
    c->data_len += n;
    return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *u)
{
    (void)s;
    struct call *c = u;
    if (id == c->stream) {
        c->closed = 1;
        c->reset = code;
    }
    return 0;
}

static void set_error(struct grpc_result *r, enum grpc_outcome o, const char *fmt, const char *arg)
{
    r->outcome = o;
    snprintf(r->error, sizeof r->error, fmt, arg);
}

/* The response message: one length-prefixed, uncompressed gRPC message. */
static void take_response(struct call *c)
{
    struct grpc_result *r = c->r;
    if (r->status != 0)
        return;
    if (c->too_big || c->data_len < 5 || c->data[0] != 0) {
        r->status = 13; /* INTERNAL, as grpc-js says of an answer it cannot read */
        snprintf(r->message, sizeof r->message, "berth-hook could not read berthd's answer (%s)",
                 c->too_big ? "larger than 8 MiB" : c->data_len < 5 ? "no message" : "compressed");
        return;
    }
    uint32_t n = (uint32_t)c->data[1] << 24 | (uint32_t)c->data[2] << 16 | (uint32_t)c->data[3] << 8 | c->data[4];
    if (n != c->data_len - 5) {
        r->status = 13;
        snprintf(r->message, sizeof r->message, "berth-hook could not read berthd's answer (%s)", "a message cut short");
        return;
    }
    r->body = malloc(n ? n : 1);
    if (r->body == NULL) {
        r->status = 13;
        snprintf(r->message, sizeof r->message, "berth-hook: out of memory");
        return;
    }
    memcpy(r->body, c->data + 5, n);
    r->body_len = n;
}

static int connect_unix(const char *path, struct grpc_result *r)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof addr.sun_path) {
        set_error(r, GRPC_UNREACHABLE, "the socket path %s is too long", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_error(r, GRPC_UNREACHABLE, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        char why[256];
        snprintf(why, sizeof why, "connect %s: %s", path, strerror(errno));
        set_error(r, GRPC_UNREACHABLE, "%s", why);
        close(fd);
        return -1;
    }
    return fd;
}

static void unary(const char *socket_path, const char *path, const char *md_name, const char *md_value, const uint8_t *req, size_t req_len, long timeout_ms, struct grpc_result *r)
{
    memset(r, 0, sizeof *r);
    long end = now_ms() + timeout_ms;
    struct call c = { .fd = -1, .r = r };
    uint8_t *framed = malloc(req_len + 5);
    if (framed == NULL) {
        set_error(r, GRPC_UNREACHABLE, "%s", "out of memory");
        return;
    }
    framed[0] = 0;
    framed[1] = (uint8_t)(req_len >> 24);
    framed[2] = (uint8_t)(req_len >> 16);
    framed[3] = (uint8_t)(req_len >> 8);
    framed[4] = (uint8_t)req_len;
    memcpy(framed + 5, req, req_len);
    c.req = framed;
    c.req_len = req_len + 5;
    c.fd = connect_unix(socket_path, r);
    if (c.fd < 0) {
        free(framed);
        return;
    }
    nghttp2_session_callbacks *cb;
    nghttp2_session *s = NULL;
    if (nghttp2_session_callbacks_new(&cb) != 0) {
        set_error(r, GRPC_UNREACHABLE, "%s", "out of memory");
        goto out;
    }
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    int rc = nghttp2_session_client_new(&s, cb, &c);
    nghttp2_session_callbacks_del(cb);
    if (rc != 0) {
        set_error(r, GRPC_UNREACHABLE, "nghttp2: %s", nghttp2_strerror(rc));
        goto out;
    }
    nghttp2_settings_entry settings[] = { { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 } };
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, settings, 1);
    char timeout[24];
    snprintf(timeout, sizeof timeout, "%ldm", timeout_ms > 99999999 ? 99999999 : timeout_ms);
#define HDR(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }
    nghttp2_nv hdrs[] = {
        HDR(":method", "POST"), HDR(":scheme", "http"), HDR(":path", path), HDR(":authority", "localhost"),
        HDR("content-type", "application/grpc"), HDR("te", "trailers"), HDR("grpc-timeout", timeout),
        HDR("user-agent", "berth-hook"),
        { (uint8_t *)(md_name ? md_name : ""), (uint8_t *)(md_value ? md_value : ""), md_name ? strlen(md_name) : 0, md_value ? strlen(md_value) : 0, NGHTTP2_NV_FLAG_NONE },
    };
#undef HDR
    size_t nhdrs = sizeof hdrs / sizeof hdrs[0] - (md_name ? 0 : 1);
    nghttp2_data_provider body = { .read_callback = read_request };
    c.stream = nghttp2_submit_request(s, NULL, hdrs, nhdrs, &body, &c);
    if (c.stream < 0) {
        set_error(r, GRPC_UNREACHABLE, "nghttp2: %s", nghttp2_strerror(c.stream));
        goto out;
    }
    int sent = 0;
    for (;;) {
        if ((rc = nghttp2_session_send(s)) != 0) {
            set_error(r, sent ? GRPC_CUT : GRPC_UNREACHABLE, "writing to berthd: %s", nghttp2_strerror(rc));
            goto out;
        }
        if (c.req_sent > 0)
            sent = 1;
        if (c.closed)
            break;
        long left = end - now_ms();
        if (left <= 0) {
            set_error(r, GRPC_TIMEOUT, "%s", "Deadline exceeded");
            goto out;
        }
        struct pollfd p = { .fd = c.fd, .events = POLLIN };
        int k = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
        if (k < 0 && errno == EINTR)
            continue;
        if (k == 0)
            continue;
        uint8_t buf[16384];
        ssize_t n = read(c.fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            set_error(r, GRPC_CUT, "Connection dropped (%s)", n < 0 ? strerror(errno) : "berthd closed it");
            goto out;
        }
        ssize_t used = nghttp2_session_mem_recv(s, buf, (size_t)n);
        if (used < 0) {
            set_error(r, GRPC_CUT, "berthd's HTTP/2 stream could not be read: %s", nghttp2_strerror((int)used));
            goto out;
        }
    }
    if (!c.have_status) {
        char why[64];
        snprintf(why, sizeof why, c.reset ? "RST_STREAM with code %u" : "HTTP status %u", c.reset ? c.reset : (unsigned)c.http_status);
        set_error(r, GRPC_CUT, "the stream ended without a grpc-status (%s)", why);
        goto out;
    }
    r->outcome = GRPC_ANSWERED;
    take_response(&c);
out:
    if (s)
        nghttp2_session_del(s);
    close(c.fd);
    free(c.data);
    free(framed);
}

void grpc_unary(const char *socket_path, const char *path, const uint8_t *req, size_t req_len, long timeout_ms, struct grpc_result *r)
{
    unary(socket_path, path, NULL, NULL, req, req_len, timeout_ms, r);
}

void grpc_unary_md(const char *socket_path, const char *path, const char *md_name, const char *md_value, const uint8_t *req, size_t req_len, long timeout_ms, struct grpc_result *r)
{
    unary(socket_path, path, md_name, md_value, req, req_len, timeout_ms, r);
}

/* ---- a bidirectional stream (berth_grpc.h grpc_stream_*) ---- */

struct grpc_stream {
    int fd;
    nghttp2_session *s;
    int32_t id;
    uint8_t *out;           /* framed messages not yet taken by nghttp2: out[out_head..out_len) */
    size_t out_head, out_len, out_cap;
    int ending;             /* half-close once out is empty */
    int deferred;           /* the data provider said DEFERRED: resume it when there is more */
    uint8_t *in;            /* DATA bytes of the response message being read */
    size_t in_len, in_cap;
    int closed;
    uint32_t reset;
    int have_status;
    int http_status;
    int broken;             /* the connection failed: r->error says how */
    int bad_message;        /* a response message we cannot read: r->status/message say why */
    grpc_on_message on_message;
    void *ctx;
    struct grpc_result *r;
};

static ssize_t stream_send_cb(nghttp2_session *s, const uint8_t *p, size_t n, int flags, void *u)
{
    (void)s;
    (void)flags;
    struct grpc_stream *st = u;
    for (;;) {
        ssize_t w = send(st->fd, p, n, MSG_NOSIGNAL);
        if (w >= 0)
            return w;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return NGHTTP2_ERR_WOULDBLOCK;
        if (errno != EINTR)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
}

static ssize_t stream_read_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t n, uint32_t *flags, nghttp2_data_source *src, void *u)
{
    (void)s;
    (void)id;
    (void)src;
    struct grpc_stream *st = u;
    size_t left = st->out_len - st->out_head;
    if (left == 0) {
        if (st->ending) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        st->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t k = left < n ? left : n;
    memcpy(buf, st->out + st->out_head, k);
    st->out_head += k;
    if (st->out_head == st->out_len)
        st->out_head = st->out_len = 0;
    if (st->out_head == st->out_len && st->ending)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)k;
}

static int stream_header_cb(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen, const uint8_t *v, size_t vlen, uint8_t flags, void *u)
{
    (void)s;
    (void)flags;
    struct grpc_stream *st = u;
    if (f->hd.type != NGHTTP2_HEADERS || f->hd.stream_id != st->id)
        return 0;
    char num[16];
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        copy_value(v, vlen, num, sizeof num);
        st->http_status = atoi(num);
    } else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        copy_value(v, vlen, num, sizeof num);
        if (!st->bad_message)
            st->r->status = atoi(num);
        st->have_status = 1;
    } else if (nlen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        if (!st->bad_message)
            percent_decode(v, vlen, st->r->message, sizeof st->r->message);
    } else if (nlen == 18 && memcmp(name, "x-berth-error-code", 18) == 0) {
        copy_value(v, vlen, st->r->berth_code, sizeof st->r->berth_code);
    } else if (nlen == 13 && memcmp(name, "x-berth-fault", 13) == 0) {
        copy_value(v, vlen, st->r->fault, sizeof st->r->fault);
    }
    return 0;
}

static void bad_message(struct grpc_stream *st, int status, const char *why)
{
    if (st->bad_message)
        return;
    st->bad_message = 1;
    st->r->status = status;
    snprintf(st->r->message, sizeof st->r->message, "%s", why);
    nghttp2_submit_rst_stream(st->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
}

/* DATA bytes: whole length-prefixed messages go to on_message as they complete */
static int stream_data_cb(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *p, size_t n, void *u)
{
    (void)s;
    (void)flags;
    struct grpc_stream *st = u;
    if (id != st->id || st->bad_message)
        return 0;
    if (st->in_len + n > st->in_cap) {
        size_t cap = st->in_cap ? st->in_cap : 16384;
        while (cap < st->in_len + n)
            cap *= 2;
        uint8_t *d = realloc(st->in, cap);
        if (d == NULL) {
            bad_message(st, 8, "berth exec: out of memory reading berthd's answer");
            return 0;
        }
        st->in = d;
        st->in_cap = cap;
    }
    memcpy(st->in + st->in_len, p, n);
    st->in_len += n;
    size_t at = 0;
    while (st->in_len - at >= 5 && !st->bad_message) {
        const uint8_t *m = st->in + at;
        uint32_t len = (uint32_t)m[1] << 24 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 8 | m[4];
        if (m[0] != 0) {
            bad_message(st, 13, "berthd's answer is compressed, which berth exec does not read");
            break;
        }
        if (len > MAX_RESPONSE) {
            /* as grpc-js says it (RESOURCE_EXHAUSTED) */
            char why[128];
            snprintf(why, sizeof why, "Received message larger than max (%u vs. %u)", len, MAX_RESPONSE);
            bad_message(st, 8, why);
            break;
        }
        if (st->in_len - at - 5 < len)
            break;
        st->on_message(m + 5, len, st->ctx);
        at += 5 + (size_t)len;
    }
    memmove(st->in, st->in + at, st->in_len - at);
    st->in_len -= at;
    return 0;
}

static int stream_close_cb(nghttp2_session *s, int32_t id, uint32_t code, void *u)
{
    (void)s;
    struct grpc_stream *st = u;
    if (id == st->id) {
        st->closed = 1;
        st->reset = code;
    }
    return 0;
}

/* berthd's side ended (its trailers, END_STREAM): the call is over for the client, as for
 * grpc-js, though this side may not have half-closed yet */
static int stream_frame_cb(nghttp2_session *s, const nghttp2_frame *f, void *u)
{
    (void)s;
    struct grpc_stream *st = u;
    if (f->hd.stream_id == st->id && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        st->closed = 1;
    return 0;
}

static void resume(struct grpc_stream *st)
{
    if (st->deferred) {
        st->deferred = 0;
        nghttp2_session_resume_data(st->s, st->id);
    }
}

int grpc_stream_send(struct grpc_stream *st, const uint8_t *msg, size_t n)
{
    if (st->out_head > 0) {
        memmove(st->out, st->out + st->out_head, st->out_len - st->out_head);
        st->out_len -= st->out_head;
        st->out_head = 0;
    }
    if (st->out_len + n + 5 > st->out_cap) {
        size_t cap = st->out_cap ? st->out_cap : 4096;
        while (cap < st->out_len + n + 5)
            cap *= 2;
        uint8_t *d = realloc(st->out, cap);
        if (d == NULL)
            return -1;
        st->out = d;
        st->out_cap = cap;
    }
    uint8_t *o = st->out + st->out_len;
    o[0] = 0;
    o[1] = (uint8_t)(n >> 24);
    o[2] = (uint8_t)(n >> 16);
    o[3] = (uint8_t)(n >> 8);
    o[4] = (uint8_t)n;
    if (n)
        memcpy(o + 5, msg, n);
    st->out_len += n + 5;
    resume(st);
    return 0;
}

void grpc_stream_end(struct grpc_stream *st)
{
    st->ending = 1;
    resume(st);
}

size_t grpc_stream_queued(const struct grpc_stream *st)
{
    return st->out_len - st->out_head;
}

int grpc_stream_fd(const struct grpc_stream *st)
{
    return st->fd;
}

short grpc_stream_events(const struct grpc_stream *st)
{
    short ev = 0;
    if (nghttp2_session_want_read(st->s))
        ev |= POLLIN;
    if (nghttp2_session_want_write(st->s))
        ev |= POLLOUT;
    return ev ? ev : POLLIN;
}

/* How the stream ended, in R: 1 */
static int stream_ended(struct grpc_stream *st)
{
    struct grpc_result *r = st->r;
    if (st->bad_message || st->have_status) {
        r->outcome = GRPC_ANSWERED;
        return 1;
    }
    if (st->broken) {
        r->outcome = GRPC_CUT;
        return 1;
    }
    char why[64];
    snprintf(why, sizeof why, st->reset ? "RST_STREAM with code %u" : "HTTP status %u", st->reset ? st->reset : (unsigned)st->http_status);
    set_error(r, GRPC_CUT, "the stream ended without a grpc-status (%s)", why);
    return 1;
}

int grpc_stream_io(struct grpc_stream *st, short revents)
{
    if (st->closed || st->broken)
        return stream_ended(st);
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        for (;;) {
            uint8_t buf[65536];
            ssize_t n = read(st->fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (n <= 0) {
                set_error(st->r, GRPC_CUT, "Connection dropped (%s)", n < 0 ? strerror(errno) : "berthd closed it");
                st->broken = 1;
                return stream_ended(st);
            }
            ssize_t used = nghttp2_session_mem_recv(st->s, buf, (size_t)n);
            if (used < 0) {
                set_error(st->r, GRPC_CUT, "berthd's HTTP/2 stream could not be read: %s", nghttp2_strerror((int)used));
                st->broken = 1;
                return stream_ended(st);
            }
            if (st->closed)
                return stream_ended(st);
            if ((size_t)n < sizeof buf)
                break;
        }
    }
    int rc = nghttp2_session_send(st->s);
    if (rc != 0) {
        set_error(st->r, GRPC_CUT, "writing to berthd: %s", nghttp2_strerror(rc));
        st->broken = 1;
        return stream_ended(st);
    }
    if (st->closed)
        return stream_ended(st);
    if (!nghttp2_session_want_read(st->s) && !nghttp2_session_want_write(st->s)) {
        set_error(st->r, GRPC_CUT, "%s", "Connection dropped (berthd ended the HTTP/2 session)");
        st->broken = 1;
        return stream_ended(st);
    }
    return 0;
}

struct grpc_stream *grpc_stream_open(const char *socket_path, const char *path, const struct grpc_header *extra, size_t n_extra,
                                     const char *user_agent, grpc_on_message on_message, void *ctx, struct grpc_result *r)
{
    memset(r, 0, sizeof *r);
    struct grpc_stream *st = calloc(1, sizeof *st);
    if (st)
        st->fd = -1;
    nghttp2_nv *hdrs = calloc(7 + n_extra, sizeof *hdrs);
    nghttp2_session_callbacks *cb = NULL;
    if (st == NULL || hdrs == NULL || nghttp2_session_callbacks_new(&cb) != 0) {
        set_error(r, GRPC_UNREACHABLE, "%s", "out of memory");
        goto fail;
    }
    st->r = r;
    st->on_message = on_message;
    st->ctx = ctx;
    st->fd = connect_unix(socket_path, r);
    if (st->fd < 0)
        goto fail;
    int fl = fcntl(st->fd, F_GETFL);
    if (fl < 0 || fcntl(st->fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        set_error(r, GRPC_UNREACHABLE, "fcntl: %s", strerror(errno));
        goto fail;
    }
    nghttp2_session_callbacks_set_send_callback(cb, stream_send_cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, stream_header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, stream_data_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, stream_close_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, stream_frame_cb);
    int rc = nghttp2_session_client_new(&st->s, cb, st);
    nghttp2_session_callbacks_del(cb);
    cb = NULL;
    if (rc != 0) {
        set_error(r, GRPC_UNREACHABLE, "nghttp2: %s", nghttp2_strerror(rc));
        goto fail;
    }
    nghttp2_settings_entry settings[] = { { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 } };
    nghttp2_submit_settings(st->s, NGHTTP2_FLAG_NONE, settings, 1);
    size_t k = 0;
#define NV(n, v) (nghttp2_nv){ (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }
    hdrs[k++] = NV(":method", "POST");
    hdrs[k++] = NV(":scheme", "http");
    hdrs[k++] = NV(":path", path);
    hdrs[k++] = NV(":authority", "localhost");
    hdrs[k++] = NV("content-type", "application/grpc");
    hdrs[k++] = NV("te", "trailers");
    hdrs[k++] = NV("user-agent", user_agent);
    for (size_t i = 0; i < n_extra; i++)
        hdrs[k++] = NV(extra[i].name, extra[i].value);
#undef NV
    nghttp2_data_provider body = { .read_callback = stream_read_cb };
    st->id = nghttp2_submit_request(st->s, NULL, hdrs, k, &body, st);
    free(hdrs);
    hdrs = NULL;
    if (st->id < 0) {
        set_error(r, GRPC_UNREACHABLE, "nghttp2: %s", nghttp2_strerror(st->id));
        goto fail;
    }
    return st;
fail:
    if (cb)
        nghttp2_session_callbacks_del(cb);
    free(hdrs);
    if (st) {
        r->outcome = GRPC_UNREACHABLE;
        grpc_stream_free(st);
    }
    return NULL;
}

void grpc_stream_free(struct grpc_stream *st)
{
    if (st == NULL)
        return;
    if (st->s)
        nghttp2_session_del(st->s);
    if (st->fd >= 0)
        close(st->fd);
    free(st->out);
    free(st->in);
    free(st);
}
