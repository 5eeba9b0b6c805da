/* The few protobuf wire-format pieces berth-hook needs to write its requests and read one
 * response field (berth_pb.c): varints and length-delimited fields, proto3 rules. Written by
 * hand, not generated: the hook's two requests are a dozen scalar fields, and this keeps the
 * build to gcc and libnghttp2. test/unit/berth-hook.test.ts decodes what it writes with the
 * real service definition (proto/berth/v1/agent.proto), so a drift from the proto fails there. */
#ifndef BERTH_PB_H
#define BERTH_PB_H
#include <stddef.h>
#include <stdint.h>

struct pb_buf {
    uint8_t *data;
    size_t len, cap;
    int failed; /* out of memory: every later write is dropped */
};

void pb_free(struct pb_buf *b);
void pb_uint(struct pb_buf *b, unsigned field, uint64_t v);   /* uint32, uint64, int32 >= 0, bool, enum */
void pb_int32(struct pb_buf *b, unsigned field, int32_t v);   /* int32: negatives as 10-byte varints */
void pb_bytes(struct pb_buf *b, unsigned field, const void *p, size_t n);
void pb_string(struct pb_buf *b, unsigned field, const char *s);
/* a nested message: its bytes as one length-delimited field, even when empty (present) */
void pb_message(struct pb_buf *b, unsigned field, const struct pb_buf *m);

/* Calls each(field's bytes) for every length-delimited occurrence of FIELD in a message; 0, or
 * -1 when the message is malformed. */
int pb_each_bytes(const uint8_t *p, size_t n, unsigned field, void (*each)(const uint8_t *, size_t, void *), void *ctx);

/* The varint FIELD of a message into out (its last occurrence; 0 when absent, as proto3
 * reads it): 0, or -1 when the message is malformed. An int32 is its low 32 bits. */
int pb_last_uint(const uint8_t *p, size_t n, unsigned field, uint64_t *out);

/* One field of a message, as pb_next reads it: a varint's value, or a length-delimited
 * field's bytes (fixed32 and fixed64 fields are skipped over, their value unread). */
struct pb_field {
    unsigned number;
    unsigned wire; /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
    uint64_t varint;
    const uint8_t *bytes;
    size_t len;
};

/* Reads the field at *at and moves *at past it: 1 when one was read, 0 at the end of the
 * message, -1 when it is malformed. */
int pb_next(const uint8_t *p, size_t n, size_t *at, struct pb_field *f);
#endif
