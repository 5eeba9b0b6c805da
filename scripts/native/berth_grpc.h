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
#endif
