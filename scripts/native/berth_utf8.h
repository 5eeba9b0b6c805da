/* Whether a C string is UTF-8 that Node decodes and encodes back to the same bytes (berth_utf8.c):
 * berth-hook sends only such text to berthd, and hands anything else to the Node command, which
 * reads it as it always has. */
#ifndef BERTH_UTF8_H
#define BERTH_UTF8_H
int utf8_ok(const char *s);
#endif
