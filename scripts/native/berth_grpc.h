/* One unary gRPC call over a unix socket (berth_grpc.c): HTTP/2 without TLS (prior knowledge,
 * as berthd's admin socket speaks it), with libnghttp2. What berth-hook needs and no more: no
 * metadata of its own (root on the admin socket needs none) but grpc_unary_md's one entry, one
 * request, one answer. */
#ifndef BERTH_GRPC_H
#define BERTH_GRPC_H
#include <stddef.h>
#include <stdint.h>

enum grpc_outcome {
    GRPC_UNREACHABLE, /* no connection: nothing was sent */
    GRPC_CUT,         /* the connection ended (or broke) before berthd's status: the call may have run */
    GRPC_TIMEOUT,     /* no status within the deadline: the call may still be running */
    GRPC_ANSWERED,    /* berthd's grpc-status (and the response, when it is 0) */
};

struct grpc_result {
    enum grpc_outcome outcome;
    int status;             /* grpc-status when ANSWERED */
    char message[4096];     /* grpc-message, percent-decoded */
    char berth_code[64];    /* x-berth-error-code, '' when none */
    char fault[16];         /* x-berth-fault, '' when none */
    uint8_t *body;          /* the response message without its 5-byte prefix (malloc'd) */
    size_t body_len;
    char error[512];        /* what went wrong when not ANSWERED */
};

/* Calls PATH ("/berth.v1.NodeAgentService/StepPrologue") on the socket with the encoded
 * request; the result says how it ended. */
void grpc_unary(const char *socket_path, const char *path, const uint8_t *req, size_t req_len, long timeout_ms, struct grpc_result *r);

/* grpc_unary with one metadata entry of its own (MD_NAME: MD_VALUE, lowercase name): the munge
 * credential of a call on the user socket (berth-hook submit-check). */
void grpc_unary_md(const char *socket_path, const char *path, const char *md_name, const char *md_value, const uint8_t *req, size_t req_len, long timeout_ms, struct grpc_result *r);

/* A bidirectional stream (berth-exec's ExecStep), driven by the caller's poll loop: open it,
 * queue messages with grpc_stream_send, poll grpc_stream_fd for grpc_stream_events and hand
 * what poll saw to grpc_stream_io, which calls on_message for every whole response message. No
 * deadline (as the Node client's ExecStep). The socket is non-blocking; nghttp2 keeps to the
 * peer's flow-control windows, and what it cannot send yet stays queued (grpc_stream_queued). */
struct grpc_stream;
struct grpc_header {
    const char *name, *value;
};
typedef void (*grpc_on_message)(const uint8_t *msg, size_t n, void *ctx);

/* Connects and queues the call's headers (the standard ones, then EXTRA); NULL when there is no
 * connection (r->outcome GRPC_UNREACHABLE, r->error saying why: nothing was sent). */
struct grpc_stream *grpc_stream_open(const char *socket_path, const char *path, const struct grpc_header *extra, size_t n_extra,
                                     const char *user_agent, grpc_on_message on_message, void *ctx, struct grpc_result *r);
/* Queues one message (framed here); 0, or -1 when out of memory. */
int grpc_stream_send(struct grpc_stream *st, const uint8_t *msg, size_t n);
/* Half-closes the stream once everything queued is sent (END_STREAM). */
void grpc_stream_end(struct grpc_stream *st);
/* bytes of messages queued and not yet taken by nghttp2 */
size_t grpc_stream_queued(const struct grpc_stream *st);
int grpc_stream_fd(const struct grpc_stream *st);
/* POLLIN and POLLOUT as the connection wants them */
short grpc_stream_events(const struct grpc_stream *st);
/* Reads what the socket has (REVENTS from poll; 0 only writes), delivers whole messages, writes
 * what can be written: 0 while the stream is open, 1 once it has ended, R filled as grpc_unary
 * fills it without a body (GRPC_ANSWERED with berthd's status, or GRPC_CUT saying how). */
int grpc_stream_io(struct grpc_stream *st, short revents);
void grpc_stream_free(struct grpc_stream *st);
#endif
