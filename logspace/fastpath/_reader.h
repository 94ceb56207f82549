/* The reader of one batch: the event's fields, the limits, the output buffers, and the
 * small steps every part of the fast path takes. Included once, by _transcode.c. */
#ifndef LOGSPACE_READER_H
#define LOGSPACE_READER_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_fieldset.h"
#include "_jsontokens.h"

/* Constants of logspace/events.py; the module exports them and a test compares the two. */
#define MAX_TEXT_BYTES 32766      /* events.MAX_TEXT_FIELD_BYTES */
#define MAX_ID_BYTES 512          /* events.MAX_ID_BYTES */
#define INDEXED_STRING_CHARS 8191 /* events.INDEXED_STRING_LENGTH */

/* The event's fields (events.REQUIRED_FIELDS, OPTIONAL_FIELDS, then the FAMILIES in order). */
enum {
    F_ID, F_TYPE, F_SYSTEM, F_AGENT_ID, F_TIMESTAMP, F_PID, F_GID, F_MARKER,
    F_BOOLEAN, F_DATE, F_DOUBLE, F_FLOAT, F_INTEGER, F_LONG, F_STRING, F_COUNT
};
#define FIRST_FAMILY F_BOOLEAN
/* `type` is optional, as in the original Logspace. */
#define REQUIRED ((1u << F_ID) | (1u << F_SYSTEM) | (1u << F_AGENT_ID) | (1u << F_TIMESTAMP))

static const char *const FIELD_NAMES[F_COUNT] = {
    "id", "type", "system", "agent-id", "timestamp", "pid", "gid", "marker",
    "boolean-properties", "date-properties", "double-properties", "float-properties",
    "integer-properties", "long-properties", "string-properties",
};

typedef struct {
    const char *p;
    const char *end;
    Py_ssize_t max_events;
    Py_ssize_t max_properties;
    Py_ssize_t max_fields; /* distinct (family, name) pairs: the space's property budget */
    Py_ssize_t max_name;
    Py_ssize_t max_string;
    const char *oldest; /* canonical instants, INSTANT_LENGTH bytes each */
    const char *newest;
    int partition; /* of the index names: logspace.partitions.CODES (month, quarter, year) */
    Buffer out;
    Buffer doc;
    FieldSet fields;
    int no_memory;
    int spaced;    /* whitespace was skipped within the current event */
    int normalise; /* the current event's document is not its own bytes (see read_event) */
    int writing;   /* the current event's members go to `doc` (see read_event) */
    int without_gil; /* set by `verdicts` while it has released the GIL */
    int needs_gil;   /* a number only PyOS_string_to_double can judge: read again with it */
    /* Counted in the first pass over each event: values Elasticsearch stores but does not
     * index (events.unindexed), and events whose document is normalised. */
    Py_ssize_t non_finite;
    Py_ssize_t long_strings;
    Py_ssize_t normalised;
} Reader;

/* Every function below returns 0 when it read what it expects, -1 when the batch is not
 * common (or memory ran out, see `no_memory`). */
#define NOT_COMMON (-1)

static inline void skip_space(Reader *r) {
    const char *start = r->p;
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
    r->spaced |= r->p != start;
}

static inline int expect(Reader *r, char c) {
    skip_space(r);
    if (r->p >= r->end || *r->p != c)
        return NOT_COMMON;
    r->p++;
    return 0;
}

static inline int read_string(Reader *r, int escapes, const char **start, const char **stop,
                              Py_ssize_t *chars) {
    return scan_string(&r->p, r->end, escapes, start, stop, chars);
}

static inline int read_number(Reader *r, int *kind, int64_t *value, double *real) {
    if (r->without_gil) {
        /* scan_number calls PyOS_string_to_double (which needs the GIL) only for a token
         * with an exponent or over 38 digits: such an event is read again, with the GIL. */
        const char *q = r->p;
        while (q < r->end && ((*q >= '0' && *q <= '9') || *q == '-' || *q == '+' || *q == '.'))
            q++;
        if ((q < r->end && (*q == 'e' || *q == 'E')) || q - r->p > 38) {
            r->needs_gil = 1;
            return NOT_COMMON;
        }
    }
    return scan_number(&r->p, r->end, kind, value, real);
}

static inline int add(Reader *r, Buffer *b, const char *bytes, size_t n) {
    if (b == &r->doc && !r->writing)
        return 0;
    if (buffer_add(b, bytes, n) < 0) {
        r->no_memory = 1;
        return NOT_COMMON;
    }
    return 0;
}

/* After a member: `,` (another follows) or `}` (the object ends); else NOT_COMMON. */
static inline int member_end(Reader *r) {
    skip_space(r);
    if (r->p >= r->end || (*r->p != ',' && *r->p != '}'))
        return NOT_COMMON;
    return *r->p++;
}

static size_t FIELD_LENGTHS[F_COUNT];

static void init_field_lengths(void) {
    for (int f = 0; f < F_COUNT; f++)
        FIELD_LENGTHS[f] = strlen(FIELD_NAMES[f]);
}

#endif
