/* Property families: their names and values, checked and copied to the document. Included
 * once, by _transcode.c, after _reader.h. */
#ifndef LOGSPACE_PROPERTIES_H
#define LOGSPACE_PROPERTIES_H

#include "_reader.h"

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
        if (chars > INDEXED_STRING_CHARS && !r->writing)
            r->long_strings++;
        break;
    default: {
        char first = *r->p;
        /* Numbers start with a digit or `-` and a digit: only then is nothing else to try. */
        if ((family == F_DOUBLE || family == F_FLOAT) &&
            (first == '"' || first == 'N' || first == 'I' ||
             (first == '-' && r->end - r->p > 1 && r->p[1] == 'I'))) {
            /* NaN and Infinity: quoted, as stored, or bare, as the Java agents write them. */
            int quoted = *r->p == '"';
            const char *token = r->p + quoted;
            Py_ssize_t length = non_finite_token(token, r->end);
            if (length > 0 && (!quoted || (r->end - token > length && token[length] == '"'))) {
                r->p = token + length + quoted;
                if (!r->writing)
                    r->non_finite++;
                if (quoted)
                    break;
                r->normalise = 1;
                return add(r, &r->doc, "\"", 1) < 0 || add(r, &r->doc, token, (size_t)length) < 0 ||
                               add(r, &r->doc, "\"", 1) < 0
                           ? NOT_COMMON
                           : 0;
            }
        }
        int kind;
        int64_t value = 0;
        double real = 0.0;
        if (read_number(r, &kind, &value, &real) < 0 || kind == KIND_BAD)
            return NOT_COMMON;
        if (family == F_INTEGER && (kind != KIND_INTEGER || value < INT32_MIN || value > INT32_MAX))
            return NOT_COMMON;
        if (family == F_LONG && kind != KIND_INTEGER)
            return NOT_COMMON;
        /* Stored as sent, but a float field cannot hold it (events.float32_overflows). */
        if (family == F_FLOAT && kind == KIND_FRACTION && isinf((float)real) && !r->writing)
            r->non_finite++;
        break;
    }
    }
    return add(r, &r->doc, start, (size_t)(r->p - start));
}

/* A property's value, or (as the Java agents send every value) an array of values: one
 * value stands for itself, several are allowed only for strings, none is left to `decode`
 * (which leaves the property out). */
static int read_value(Reader *r, int family) {
    skip_space(r);
    if (r->p >= r->end || *r->p != '[')
        return read_property(r, family);
    r->p++;
    r->normalise = 1;
    size_t open = r->doc.length;
    if (add(r, &r->doc, "[", 1) < 0)
        return NOT_COMMON;
    Py_ssize_t values = 0;
    for (;;) {
        skip_space(r);
        if (r->p < r->end && *r->p == ']' && values == 0)
            return NOT_COMMON;
        if (read_property(r, family) < 0)
            return NOT_COMMON;
        values++;
        skip_space(r);
        if (r->p >= r->end)
            return NOT_COMMON;
        char c = *r->p++;
        if (c == ']')
            break;
        if (c != ',' || family != F_STRING || add(r, &r->doc, ",", 1) < 0)
            return NOT_COMMON;
    }
    if (!r->writing)
        return 0;
    if (values > 1)
        return add(r, &r->doc, "]", 1);
    /* One value: without its brackets. */
    memmove(r->doc.data + open, r->doc.data + open + 1, r->doc.length - open - 1);
    r->doc.length--;
    return 0;
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
            /* Past max_fields the batch can never be stored (the budget refuses it), so the
             * set stops growing there and the slower path names what is over. */
            if (used == 0 || ++*properties > r->max_properties ||
                r->fields.used > (size_t)r->max_fields)
                return NOT_COMMON;
        }
        if (expect(r, ':') < 0 || add(r, &r->doc, name - 1, (size_t)length + 2) < 0 ||
            add(r, &r->doc, ":", 1) < 0 || read_value(r, family) < 0)
            return NOT_COMMON;
        int end = member_end(r);
        if (end == NOT_COMMON)
            return NOT_COMMON;
        if (add(r, &r->doc, end == '}' ? "}" : ",", 1) < 0)
            return NOT_COMMON;
        if (end == '}')
            return 0;
    }
}

#endif
