/* JSON tokens read and checked in place, for _transcode.c: strings (UTF-8, escapes, length
 * in code points), numbers (their kind and range), canonical instants; and a growing buffer.
 * Each reader returns 0 and moves the cursor past the token, or BAD_TOKEN. Nothing here
 * knows about events. */
#ifndef LOGSPACE_JSONTOKENS_H
#define LOGSPACE_JSONTOKENS_H

#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define BAD_TOKEN (-1)
#define INSTANT_LENGTH 24 /* 2015-05-18T12:07:00.000Z */

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
    /* Raw: `verdicts` reads events without holding the GIL. */
    char *data = PyMem_RawRealloc(b->data, capacity);
    if (data == NULL)
        return -1;
    b->data = data;
    b->capacity = capacity;
    return 0;
}

static inline int buffer_add(Buffer *b, const char *bytes, size_t n) {
    /* Nothing to add may meet a buffer never allocated: NULL + 0 is undefined behaviour. */
    if (n == 0)
        return 0;
    if (buffer_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->length, bytes, n);
    b->length += n;
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


static void init_tokens(void) {
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

/* A string token at *cursor (which is at its opening quote): valid UTF-8, no raw control
 * characters, valid escapes and no lone surrogates. Sets *start and *stop to the whole token
 * (quotes included) and *chars to the code points of its value. Escapes only if allowed. */
static int scan_string(const char **cursor, const char *limit, int escapes, const char **start,
                       const char **stop, Py_ssize_t *chars) {
    const unsigned char *p = (const unsigned char *)*cursor;
    const unsigned char *end = (const unsigned char *)limit;
    if (p >= end || *p != '"')
        return BAD_TOKEN;
    *start = (const char *)p;
    p++;
    Py_ssize_t count = 0;
    for (;;) {
        /* Plain ASCII runs are the usual case. */
        const unsigned char *run = p;
        p = skip_plain(p, end);
        count += p - run;
        if (p >= end)
            return BAD_TOKEN;
        unsigned char c = *p;
        if (c == '"')
            break;
        if (c < 0x20)
            return BAD_TOKEN;
        if (c == '\\') {
            if (!escapes || p + 1 >= end)
                return BAD_TOKEN;
            unsigned char e = p[1];
            if (e == 'u') {
                int unit = read_hex4((const char *)p + 2, (const char *)end);
                if (unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF))
                    return BAD_TOKEN;
                p += 6;
                if (unit >= 0xD800 && unit <= 0xDBFF) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                        return BAD_TOKEN;
                    int low = read_hex4((const char *)p + 2, (const char *)end);
                    if (low < 0xDC00 || low > 0xDFFF)
                        return BAD_TOKEN;
                    p += 6;
                }
            } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                       e == 'r' || e == 't') {
                p += 2;
            } else {
                return BAD_TOKEN;
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
            return BAD_TOKEN;
        }
        if (end - p <= n)
            return BAD_TOKEN;
        if (p[1] < low || p[1] > high)
            return BAD_TOKEN;
        for (Py_ssize_t i = 2; i <= n; i++)
            if (p[i] < 0x80 || p[i] > 0xBF)
                return BAD_TOKEN;
        p += n + 1;
        count++;
    }
    p++; /* the closing quote */
    *cursor = (const char *)p;
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

/* The length of the bare token NaN, Infinity or -Infinity at p (as Java's Jackson writes
 * non-finite doubles), or 0. What follows it is the caller's to check. */
static Py_ssize_t non_finite_token(const char *p, const char *end) {
    static const char *const tokens[] = {"NaN", "Infinity", "-Infinity"};
    static const Py_ssize_t lengths[] = {3, 8, 9};
    for (int i = 0; i < 3; i++)
        if (end - p >= lengths[i] && memcmp(p, tokens[i], (size_t)lengths[i]) == 0)
            return lengths[i];
    return 0;
}

enum { KIND_INTEGER, KIND_FRACTION, KIND_BAD };

/* A JSON number token at *cursor; *value holds an integer's value when it fits int64. */
static int scan_number(const char **cursor, const char *end, int *kind, int64_t *value,
                       double *real) {
    const char *p = *cursor, *start = *cursor;
    int negative = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9')
        return BAD_TOKEN;
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
            return BAD_TOKEN;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        fraction = exponent = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return BAD_TOKEN;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    *cursor = p;
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

#endif
