/* A unary gRPC call over a unix socket with libnghttp2 (berth_grpc.h). */
#include <errno.h>
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
