/* The common batch, checked and written as a `_bulk` body in one pass, without Python objects.
 *
 * `transcode` reads a JSON array of events and, when every event is of the common kind
 * (see logspace/transcoder.py), writes per event the `create` action line and the document
 * line (the event's own members, compacted, plus `space`). It returns None for anything it
 * does not accept as is: the slower paths then check the batch again and name every problem.
 * So this file may be strict without loss, but must never accept what `decode.decode` would
 * refuse or change (tests/test_transcoder.py and tests/test_decode_batch.py hold it to that).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEXT_CHARS 1024 /* events.MAX_TEXT_FIELD_LENGTH */
#define MAX_ID_BYTES 512    /* events.MAX_ID_BYTES */
#define FLOAT32_MAX_VALUE 3.4028234663852886e38
#define INSTANT_LENGTH 24 /* 2015-05-18T12:07:00.000Z */

/* The event's fields; the families are in the order of schema.FAMILY_FIELDS. */
enum {
    F_ID, F_TYPE, F_SYSTEM, F_AGENT_ID, F_TIMESTAMP, F_PID, F_GID, F_MARKER,
    F_BOOLEAN, F_DATE, F_DOUBLE, F_FLOAT, F_INTEGER, F_LONG, F_STRING, F_COUNT
};
#define FIRST_FAMILY F_BOOLEAN
#define REQUIRED ((1u << F_ID) | (1u << F_TYPE) | (1u << F_SYSTEM) | (1u << F_AGENT_ID) | (1u << F_TIMESTAMP))

static const char *const FIELD_NAMES[F_COUNT] = {
    "id", "type", "system", "agent-id", "timestamp", "pid", "gid", "marker",
    "boolean-properties", "date-properties", "double-properties", "float-properties",
    "integer-properties", "long-properties", "string-properties",
};

/* A growing byte buffer. */
typedef struct {
    char *data;
    size_t length;
    size_t capacity;
} Buffer;

static int buffer_reserve(Buffer *b, size_t more) {
    if (b->length + more <= b->capacity)
        return 0;
    size_t capacity = b->capacity ? b->capacity : 4096;
    while (capacity < b->length + more)
        capacity *= 2;
    char *data = PyMem_Realloc(b->data, capacity);
    if (data == NULL)
        return -1;
    b->data = data;
    b->capacity = capacity;
    return 0;
}

static inline int buffer_add(Buffer *b, const char *bytes, size_t n) {
    if (buffer_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->length, bytes, n);
    b->length += n;
    return 0;
}

/* The distinct property fields of the batch: (family, name) -> the last event that used it. */
typedef struct {
    const char *name; /* into the request body, which outlives the call */
    Py_ssize_t length;
    Py_hash_t hash;
    int family;
    Py_ssize_t last_event;
} Field;

typedef struct {
    Field *slots;
    size_t capacity; /* a power of two */
    size_t used;
} FieldSet;

static size_t field_hash(int family, const char *name, Py_ssize_t length) {
    /* The length and the first and last 8 bytes: names differ there, and a collision only
     * costs a comparison. */
    uint64_t head = 0, tail = 0;
    size_t n = (size_t)length < 8 ? (size_t)length : 8;
    memcpy(&head, name, n);
    memcpy(&tail, name + length - n, n);
    uint64_t hash = ((uint64_t)length << 8 | (uint64_t)family) * 0x9E3779B97F4A7C15ULL;
    hash ^= head * 0xC2B2AE3D27D4EB4FULL;
    hash ^= (tail ^ (hash >> 29)) * 0x165667B19E3779F9ULL;
    return (size_t)(hash ^ (hash >> 32));
}

static int fieldset_grow(FieldSet *set) {
    size_t capacity = set->capacity ? set->capacity * 2 : 64;
    Field *slots = PyMem_Calloc(capacity, sizeof(Field));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < set->capacity; i++) {
        Field *old = &set->slots[i];
        if (old->name == NULL)
            continue;
        size_t at = (size_t)old->hash & (capacity - 1);
        while (slots[at].name != NULL)
            at = (at + 1) & (capacity - 1);
        slots[at] = *old;
    }
    PyMem_Free(set->slots);
    set->slots = slots;
    set->capacity = capacity;
    return 0;
}

/* 1: new to the event; 0: the event already has this property (a repeated key); -1: no memory. */
static int fieldset_use(FieldSet *set, int family, const char *name, Py_ssize_t length,
                        Py_ssize_t event) {
    if ((set->used + 1) * 2 > set->capacity && fieldset_grow(set) < 0)
        return -1;
    size_t hash = field_hash(family, name, length);
    size_t at = hash & (set->capacity - 1);
    for (;;) {
        Field *slot = &set->slots[at];
        if (slot->name == NULL) {
            slot->name = name;
            slot->length = length;
            slot->hash = (Py_hash_t)hash;
            slot->family = family;
            slot->last_event = event;
            set->used++;
            return 1;
        }
        if ((size_t)slot->hash == hash && slot->family == family && slot->length == length &&
            memcmp(slot->name, name, (size_t)length) == 0) {
            if (slot->last_event == event)
                return 0;
            slot->last_event = event;
            return 1;
        }
        at = (at + 1) & (set->capacity - 1);
    }
}

typedef struct {
    const char *p;
    const char *end;
    Py_ssize_t max_events;
    Py_ssize_t max_properties;
    Py_ssize_t max_name;
    Py_ssize_t max_string;
    const char *oldest; /* canonical instants, INSTANT_LENGTH bytes each */
    const char *newest;
    Buffer out;
    Buffer doc;
    FieldSet fields;
    int no_memory;
    int spaced;  /* whitespace was skipped within the current event */
    int writing; /* the current event's members go to `doc` (see read_event) */
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

static inline int add(Reader *r, Buffer *b, const char *bytes, size_t n) {
    if (b == &r->doc && !r->writing)
        return 0;
    if (buffer_add(b, bytes, n) < 0) {
        r->no_memory = 1;
        return NOT_COMMON;
    }
    return 0;
}

static inline int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int read_hex4(const char *p, const char *end) {
    if (end - p < 4)
        return -1;
    int value = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_value(p[i]);
        if (digit < 0)
            return -1;
        value = value * 16 + digit;
    }
    return value;
}

/* Bytes that stand for themselves in a JSON string: printable ASCII but `"` and `\\`. */
static unsigned char PLAIN[256];

static size_t FIELD_LENGTHS[F_COUNT];

static void init_plain(void) {
    for (int f = 0; f < F_COUNT; f++)
        FIELD_LENGTHS[f] = strlen(FIELD_NAMES[f]);
    for (int c = 0x20; c < 0x80; c++)
        PLAIN[c] = c != '"' && c != '\\';
}

/* The bytes of a word (8 bytes of memory, little-endian) that are not PLAIN: non-ASCII, a
 * control character, `"` or `\\`, as their high bits. A borrow can flag a byte above a
 * flagged one, never below, so the lowest flag is exact (see "Bit Twiddling Hacks", hasless
 * and haszero). */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
static inline uint64_t special_bytes(uint64_t x) {
    uint64_t quote = x ^ (ONES * '"'), backslash = x ^ (ONES * '\\');
    uint64_t control = (x - ONES * 0x20) & ~x;
    return (x | control | ((quote - ONES) & ~quote) | ((backslash - ONES) & ~backslash)) & HIGHS;
}

/* The first byte at or after p that is not PLAIN, or end. */
static inline const unsigned char *skip_plain(const unsigned char *p, const unsigned char *end) {
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        uint64_t special = special_bytes(word);
        if (special)
            return p + (__builtin_ctzll(special) >> 3);
        p += 8;
    }
#endif
    while (p < end && PLAIN[*p])
        p++;
    return p;
}

/* A string token at r->p (which is at its opening quote): valid UTF-8, no raw control
 * characters, valid escapes and no lone surrogates. Sets *start and *stop to the whole token
 * (quotes included) and *chars to the code points of its value. Escapes only if allowed. */
static int read_string(Reader *r, int escapes, const char **start, const char **stop,
                       Py_ssize_t *chars) {
    const unsigned char *p = (const unsigned char *)r->p;
    const unsigned char *end = (const unsigned char *)r->end;
    if (p >= end || *p != '"')
        return NOT_COMMON;
    *start = (const char *)p;
    p++;
    Py_ssize_t count = 0;
    for (;;) {
        /* Plain ASCII runs are the usual case. */
        const unsigned char *run = p;
        p = skip_plain(p, end);
        count += p - run;
        if (p >= end)
            return NOT_COMMON;
        unsigned char c = *p;
        if (c == '"')
            break;
        if (c < 0x20)
            return NOT_COMMON;
        if (c == '\\') {
            if (!escapes || p + 1 >= end)
                return NOT_COMMON;
            unsigned char e = p[1];
            if (e == 'u') {
                int unit = read_hex4((const char *)p + 2, (const char *)end);
                if (unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF))
                    return NOT_COMMON;
                p += 6;
                if (unit >= 0xD800 && unit <= 0xDBFF) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                        return NOT_COMMON;
                    int low = read_hex4((const char *)p + 2, (const char *)end);
                    if (low < 0xDC00 || low > 0xDFFF)
                        return NOT_COMMON;
                    p += 6;
                }
            } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                       e == 'r' || e == 't') {
                p += 2;
            } else {
                return NOT_COMMON;
            }
            count++;
            continue;
        }
        /* UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
        Py_ssize_t n;
        unsigned char low = 0x80, high = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                low = 0xA0;
            else if (c == 0xED)
                high = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                low = 0x90;
            else if (c == 0xF4)
                high = 0x8F;
        } else {
            return NOT_COMMON;
        }
        if (end - p <= n)
            return NOT_COMMON;
        if (p[1] < low || p[1] > high)
            return NOT_COMMON;
        for (Py_ssize_t i = 2; i <= n; i++)
            if (p[i] < 0x80 || p[i] > 0xBF)
                return NOT_COMMON;
        p += n + 1;
        count++;
    }
    p++; /* the closing quote */
    r->p = (const char *)p;
    *stop = (const char *)p;
    *chars = count;
    return 0;
}

/* `normalise_instant`'s own form, of a real instant: then it leaves the value as it is. */
static int is_canonical_instant(const char *s, Py_ssize_t length) {
    static const char shape[] = "0000-00-00T00:00:00.000Z";
    if (length != INSTANT_LENGTH)
        return 0;
    for (int i = 0; i < INSTANT_LENGTH; i++) {
        if (shape[i] == '0') {
            if (s[i] < '0' || s[i] > '9')
                return 0;
        } else if (s[i] != shape[i]) {
            return 0;
        }
    }
    int year = 0, month = 0, day = 0;
    for (int i = 0; i < 4; i++)
        year = year * 10 + (s[i] - '0');
    month = (s[5] - '0') * 10 + (s[6] - '0');
    day = (s[8] - '0') * 10 + (s[9] - '0');
    int hour = (s[11] - '0') * 10 + (s[12] - '0');
    int minute = (s[14] - '0') * 10 + (s[15] - '0');
    int second = (s[17] - '0') * 10 + (s[18] - '0');
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59)
        return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int last = days[month - 1] + (month == 2 && leap);
    return day <= last;
}

enum { KIND_INTEGER, KIND_FRACTION, KIND_BAD };

/* A JSON number token at r->p; *value holds an integer's value when it fits int64. */
static int read_number(Reader *r, int *kind, int64_t *value, double *real) {
    const char *p = r->p, *end = r->end, *start = r->p;
    int negative = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9')
        return NOT_COMMON;
    uint64_t magnitude = 0;
    int overflow = 0;
    const char *digits = p;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            unsigned digit = (unsigned)(*p - '0');
            if (magnitude > (UINT64_MAX - digit) / 10)
                overflow = 1;
            else
                magnitude = magnitude * 10 + digit;
            p++;
        }
    }
    Py_ssize_t integer_digits = p - digits;
    int fraction = 0, exponent = 0;
    if (p < end && *p == '.') {
        fraction = 1;
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return NOT_COMMON;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        fraction = exponent = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return NOT_COMMON;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    r->p = p;
    if (!fraction) {
        /* Integers beyond int64 are left to the slower paths. */
        if (overflow || magnitude > (uint64_t)INT64_MAX + (negative ? 1u : 0u)) {
            *kind = KIND_BAD;
            return 0;
        }
        *kind = KIND_INTEGER;
        *value = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
        return 0;
    }
    char text[64];
    Py_ssize_t length = p - start;
    if (length >= (Py_ssize_t)sizeof(text)) {
        *kind = KIND_BAD;
        return 0;
    }
    if (!exponent && integer_digits <= 38) {
        /* Below 1e38 in magnitude, within float32's range, and with under 64 characters no
         * non-zero fraction rounds to zero: nothing left to check. */
        *kind = KIND_FRACTION;
        *real = 0.0;
        return 0;
    }
    memcpy(text, start, (size_t)length);
    text[length] = '\0';
    /* The locale's decimal point is not ours to trust: PyOS_string_to_double ignores it. */
    double parsed = PyOS_string_to_double(text, NULL, NULL);
    if (parsed == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        *kind = KIND_BAD;
        return 0;
    }
    /* Overflow (inf) and underflow to zero of a non-zero literal are left to the slower paths. */
    if (!isfinite(parsed) || (parsed == 0.0 && magnitude != 0)) {
        *kind = KIND_BAD;
        return 0;
    }
    if (parsed == 0.0) {
        for (const char *q = start; q < p && *q != 'e' && *q != 'E'; q++)
            if (*q >= '1' && *q <= '9') {
                *kind = KIND_BAD;
                return 0;
            }
    }
    *kind = KIND_FRACTION;
    *real = parsed;
    return 0;
}

/* A property name that `events.check_property_name` accepts as it is: printable ASCII, not
 * blank, no empty part between dots, no escapes (anything else goes the slower way). */
static int read_name(Reader *r, const char **name, Py_ssize_t *length) {
    const char *start, *stop;
    Py_ssize_t chars;
    if (read_string(r, 0, &start, &stop, &chars) < 0)
        return NOT_COMMON;
    const char *s = start + 1;
    Py_ssize_t n = stop - start - 2;
    if (n < 1 || n > r->max_name || s[0] == '.' || s[n - 1] == '.')
        return NOT_COMMON;
    int blank = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7E)
            return NOT_COMMON;
        if (c != ' ')
            blank = 0;
        if (c == '.' && s[i + 1] == '.')
            return NOT_COMMON;
    }
    if (blank)
        return NOT_COMMON;
    *name = s;
    *length = n;
    return 0;
}

/* One value of a property family, copied to the document. */
static int read_property(Reader *r, int family) {
    skip_space(r);
    if (r->p >= r->end)
        return NOT_COMMON;
    const char *start = r->p, *stop;
    Py_ssize_t chars;
    switch (family) {
    case F_BOOLEAN:
        if (r->end - r->p >= 4 && memcmp(r->p, "true", 4) == 0)
            r->p += 4;
        else if (r->end - r->p >= 5 && memcmp(r->p, "false", 5) == 0)
            r->p += 5;
        else
            return NOT_COMMON;
        break;
    case F_DATE:
        if (read_string(r, 0, &start, &stop, &chars) < 0 ||
            !is_canonical_instant(start + 1, stop - start - 2))
            return NOT_COMMON;
        break;
    case F_STRING:
        if (read_string(r, 1, &start, &stop, &chars) < 0 || chars > r->max_string)
            return NOT_COMMON;
        break;
    default: {
        int kind;
        int64_t value = 0;
        double real = 0.0;
        if (read_number(r, &kind, &value, &real) < 0 || kind == KIND_BAD)
            return NOT_COMMON;
        if (family == F_INTEGER && (kind != KIND_INTEGER || value < INT32_MIN || value > INT32_MAX))
            return NOT_COMMON;
        if (family == F_LONG && kind != KIND_INTEGER)
            return NOT_COMMON;
        if (family == F_FLOAT && kind == KIND_FRACTION &&
            (real > FLOAT32_MAX_VALUE || real < -FLOAT32_MAX_VALUE))
            return NOT_COMMON;
        break;
    }
    }
    return add(r, &r->doc, start, (size_t)(r->p - start));
}

/* A property family's object, copied to the document; adds to the event's property count. */
static int read_family(Reader *r, int family, Py_ssize_t event, Py_ssize_t *properties) {
    if (expect(r, '{') < 0 || add(r, &r->doc, "{", 1) < 0)
        return NOT_COMMON;
    skip_space(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return add(r, &r->doc, "}", 1);
    }
    for (;;) {
        skip_space(r);
        const char *name;
        Py_ssize_t length;
        if (read_name(r, &name, &length) < 0)
            return NOT_COMMON;
        if (!r->writing) { /* the second pass of an event (see read_event) checked all this */
            int used = fieldset_use(&r->fields, family, name, length, event);
            if (used < 0) {
                r->no_memory = 1;
                return NOT_COMMON;
            }
            if (used == 0 || ++*properties > r->max_properties)
                return NOT_COMMON;
        }
        if (expect(r, ':') < 0 || add(r, &r->doc, name - 1, (size_t)length + 2) < 0 ||
            add(r, &r->doc, ":", 1) < 0 || read_property(r, family) < 0)
            return NOT_COMMON;
        skip_space(r);
        if (r->p >= r->end)
            return NOT_COMMON;
        char c = *r->p++;
        if (c == '}')
            return add(r, &r->doc, "}", 1);
        if (c != ',' || add(r, &r->doc, ",", 1) < 0)
            return NOT_COMMON;
    }
}

static int field_of(const char *key, Py_ssize_t length) {
    for (int f = 0; f < F_COUNT; f++)
        if ((size_t)length == FIELD_LENGTHS[f] && key[0] == FIELD_NAMES[f][0] &&
            memcmp(key, FIELD_NAMES[f], (size_t)length) == 0)
            return f;
    return -1;
}

/* The members of an event (r->p is past its `{`) up to its `}`; to r->doc if r->writing. */
static int read_members(Reader *r, Py_ssize_t event, const char **id, Py_ssize_t *id_length,
                        const char **timestamp) {
    unsigned seen = 0;
    Py_ssize_t properties = 0;
    for (;;) {
        skip_space(r);
        const char *start, *stop;
        Py_ssize_t chars;
        if (read_string(r, 0, &start, &stop, &chars) < 0)
            return NOT_COMMON;
        int field = field_of(start + 1, stop - start - 2);
        if (field < 0 || seen & (1u << field))
            return NOT_COMMON; /* unknown (e.g. `space`) or repeated */
        seen |= 1u << field;
        if (expect(r, ':') < 0)
            return NOT_COMMON;
        if (seen != (1u << field) && add(r, &r->doc, ",", 1) < 0)
            return NOT_COMMON;
        if (add(r, &r->doc, start, (size_t)(stop - start)) < 0 || add(r, &r->doc, ":", 1) < 0)
            return NOT_COMMON;
        skip_space(r);
        if (field >= FIRST_FAMILY) {
            if (read_family(r, field, event, &properties) < 0)
                return NOT_COMMON;
        } else {
            /* Text without escapes; the timestamp in canonical form. */
            if (read_string(r, 0, &start, &stop, &chars) < 0)
                return NOT_COMMON;
            Py_ssize_t bytes = stop - start - 2;
            if (field == F_TIMESTAMP) {
                if (!is_canonical_instant(start + 1, bytes) ||
                    memcmp(start + 1, r->oldest, INSTANT_LENGTH) < 0 ||
                    memcmp(start + 1, r->newest, INSTANT_LENGTH) > 0)
                    return NOT_COMMON;
                *timestamp = start + 1;
            } else if (chars < 1 || chars > MAX_TEXT_CHARS) {
                return NOT_COMMON;
            } else if (field == F_ID) {
                if (bytes > MAX_ID_BYTES)
                    return NOT_COMMON;
                *id = start;
                *id_length = stop - start;
            }
            if (add(r, &r->doc, start, (size_t)(stop - start)) < 0)
                return NOT_COMMON;
        }
        skip_space(r);
        if (r->p >= r->end)
            return NOT_COMMON;
        char c = *r->p++;
        if (c == '}')
            break;
        if (c != ',')
            return NOT_COMMON;
    }
    return (seen & REQUIRED) == REQUIRED ? 0 : NOT_COMMON;
}

/* One event: its action and document to r->out. The first pass only checks. Most events
 * hold no whitespace, so their document is their own bytes; otherwise a second pass writes
 * the members compacted to r->doc. */
static int read_event(Reader *r, Py_ssize_t event, const char *action, Py_ssize_t action_length,
                      const char *tail, Py_ssize_t tail_length) {
    if (expect(r, '{') < 0)
        return NOT_COMMON;
    const char *begin = r->p - 1;
    const char *id = NULL, *timestamp = NULL;
    Py_ssize_t id_length = 0;
    r->spaced = 0;
    r->writing = 0;
    if (read_members(r, event, &id, &id_length, &timestamp) < 0)
        return NOT_COMMON;
    const char *document = begin;
    size_t document_length = (size_t)(r->p - 1 - begin); /* without the closing brace */
    if (r->spaced) {
        const char *after = r->p;
        r->p = begin + 1;
        r->writing = 1;
        r->doc.length = 0;
        int written = add(r, &r->doc, "{", 1) < 0 ||
                      read_members(r, event, &id, &id_length, &timestamp) < 0;
        r->writing = 0;
        if (written != 0 || r->p != after)
            return NOT_COMMON;
        document = r->doc.data;
        document_length = r->doc.length;
    }
    /* {"create":{"_index":"<prefix>-<space>-YYYY.MM","_id":"<id>"}}\n then the document. */
    char month[7] = {timestamp[0], timestamp[1], timestamp[2], timestamp[3], '.', timestamp[5],
                     timestamp[6]};
    if (add(r, &r->out, action, (size_t)action_length) < 0 || add(r, &r->out, month, 7) < 0 ||
        add(r, &r->out, "\",\"_id\":", 8) < 0 || add(r, &r->out, id, (size_t)id_length) < 0 ||
        add(r, &r->out, "}}\n", 3) < 0 || add(r, &r->out, document, document_length) < 0 ||
        add(r, &r->out, tail, (size_t)tail_length) < 0)
        return NOT_COMMON;
    return 0;
}

static PyObject *field_names(Reader *r) {
    PyObject *names = PySet_New(NULL);
    if (names == NULL)
        return NULL;
    Buffer text = {0};
    for (size_t i = 0; i < r->fields.capacity; i++) {
        Field *field = &r->fields.slots[i];
        if (field->name == NULL)
            continue;
        /* `family.name`, all ASCII (see read_name). */
        const char *family = FIELD_NAMES[field->family];
        text.length = 0;
        if (buffer_add(&text, family, strlen(family)) < 0 || buffer_add(&text, ".", 1) < 0 ||
            buffer_add(&text, field->name, (size_t)field->length) < 0) {
            PyErr_NoMemory();
            goto failed;
        }
        PyObject *name = PyUnicode_DecodeASCII(text.data, (Py_ssize_t)text.length, NULL);
        if (name == NULL || PySet_Add(names, name) < 0) {
            Py_XDECREF(name);
            goto failed;
        }
        Py_DECREF(name);
    }
    PyMem_Free(text.data);
    return names;
failed:
    PyMem_Free(text.data);
    Py_DECREF(names);
    return NULL;
}

PyDoc_STRVAR(transcode_doc,
"transcode(body, action, tail, max_events, max_properties, max_name, max_string, oldest, newest)\n"
"--\n\n"
"(bulk body, event count, property fields) for a common batch, else None.\n\n"
"action: the start of each action line up to the month, b'{\"create\":{\"_index\":\"p-s-';\n"
"tail: what ends each document, b',\"space\":\"s\"}\\n'; oldest, newest: canonical instants.");

static PyObject *transcode(PyObject *module, PyObject *args) {
    Py_buffer body, action, tail, oldest, newest;
    Py_ssize_t max_events, max_properties, max_name, max_string;
    if (!PyArg_ParseTuple(args, "y*y*y*nnnny*y*", &body, &action, &tail, &max_events,
                          &max_properties, &max_name, &max_string, &oldest, &newest))
        return NULL;
    PyObject *result = NULL;
    Reader r = {0};
    if (oldest.len != INSTANT_LENGTH || newest.len != INSTANT_LENGTH) {
        PyErr_SetString(PyExc_ValueError, "oldest and newest must be canonical instants");
        goto done;
    }
    r.p = body.buf;
    r.end = (const char *)body.buf + body.len;
    r.max_events = max_events;
    r.max_properties = max_properties;
    r.max_name = max_name;
    r.max_string = max_string;
    r.oldest = oldest.buf;
    r.newest = newest.buf;
    if (buffer_reserve(&r.out, (size_t)body.len + (size_t)body.len / 4 + 4096) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t events = 0;
    int common = expect(&r, '[') == 0;
    skip_space(&r);
    if (common && r.p < r.end && *r.p == ']')
        common = 0; /* an empty batch: nothing to gain here */
    while (common) {
        if (events >= max_events ||
            read_event(&r, events, action.buf, action.len, tail.buf, tail.len) < 0) {
            common = 0;
            break;
        }
        events++;
        skip_space(&r);
        if (r.p >= r.end) {
            common = 0;
            break;
        }
        char c = *r.p++;
        if (c == ']')
            break;
        if (c != ',')
            common = 0;
    }
    skip_space(&r);
    if (r.no_memory) {
        PyErr_NoMemory();
        goto done;
    }
    if (!common || r.p != r.end) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *bytes = PyBytes_FromStringAndSize(r.out.data, (Py_ssize_t)r.out.length);
    PyObject *fields = bytes ? field_names(&r) : NULL;
    if (fields != NULL)
        result = Py_BuildValue("(NnN)", bytes, events, fields);
    else
        Py_XDECREF(bytes);
done:
    PyMem_Free(r.out.data);
    PyMem_Free(r.doc.data);
    PyMem_Free(r.fields.slots);
    PyBuffer_Release(&body);
    PyBuffer_Release(&action);
    PyBuffer_Release(&tail);
    PyBuffer_Release(&oldest);
    PyBuffer_Release(&newest);
    return result;
}

static PyMethodDef methods[] = {
    {"transcode", transcode, METH_VARARGS, transcode_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "logspace._transcode",
    "The common batch, checked and written as a _bulk body in C (see logspace/transcoder.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__transcode(void) {
    init_plain();
    return PyModule_Create(&module);
}
