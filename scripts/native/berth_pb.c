/* Protobuf wire format for berth-hook (berth_pb.h). */
#include <stdlib.h>
#include <string.h>
#include "berth_pb.h"

void pb_free(struct pb_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static void put(struct pb_buf *b, const void *p, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (d == NULL) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void varint(struct pb_buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            t[n] |= 0x80;
        n++;
    } while (v);
    put(b, t, n);
}

void pb_uint(struct pb_buf *b, unsigned field, uint64_t v)
{
    varint(b, (uint64_t)field << 3);
    varint(b, v);
}

void pb_int32(struct pb_buf *b, unsigned field, int32_t v)
{
    pb_uint(b, field, (uint64_t)(int64_t)v);
}

void pb_bytes(struct pb_buf *b, unsigned field, const void *p, size_t n)
{
    varint(b, ((uint64_t)field << 3) | 2);
    varint(b, n);
    put(b, p, n);
}

void pb_string(struct pb_buf *b, unsigned field, const char *s)
{
    pb_bytes(b, field, s, strlen(s));
}

void pb_message(struct pb_buf *b, unsigned field, const struct pb_buf *m)
{
    if (m->failed)
        b->failed = 1;
    pb_bytes(b, field, m->data ? m->data : (const uint8_t *)"", m->len);
}

static int read_varint(const uint8_t *p, size_t n, size_t *at, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*at >= n)
            return -1;
        uint8_t c = p[(*at)++];
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return 0;
    }
    return -1;
}

int pb_each_bytes(const uint8_t *p, size_t n, unsigned field, void (*each)(const uint8_t *, size_t, void *), void *ctx)
{
    size_t at = 0;
    struct pb_field f;
    int k;
    while ((k = pb_next(p, n, &at, &f)) == 1)
        if (f.number == field && f.wire == 2)
            each(f.bytes, f.len, ctx);
    return k;
}

int pb_last_uint(const uint8_t *p, size_t n, unsigned field, uint64_t *out)
{
    size_t at = 0;
    struct pb_field f;
    int k;
    *out = 0; /* proto3: absent is 0 */
    while ((k = pb_next(p, n, &at, &f)) == 1)
        if (f.number == field && f.wire == 0)
            *out = f.varint;
    return k;
}

int pb_next(const uint8_t *p, size_t n, size_t *at, struct pb_field *f)
{
    if (*at >= n)
        return 0;
    uint64_t key, v;
    if (read_varint(p, n, at, &key) != 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return -1;
    memset(f, 0, sizeof *f);
    f->number = (unsigned)(key >> 3);
    f->wire = (unsigned)(key & 7);
    switch (f->wire) {
    case 0:
        return read_varint(p, n, at, &f->varint) == 0 ? 1 : -1;
    case 1:
        if (n - *at < 8)
            return -1;
        *at += 8;
        return 1;
    case 5:
        if (n - *at < 4)
            return -1;
        *at += 4;
        return 1;
    case 2:
        if (read_varint(p, n, at, &v) != 0 || v > n - *at)
            return -1;
        f->bytes = p + *at;
        f->len = (size_t)v;
        *at += (size_t)v;
        return 1;
    default:
        return -1;
    }
}
