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
#include <stdint.h>
#include <string.h>

#include "_fieldset.h"
#include "_jsontokens.h"

#define MAX_TEXT_BYTES 32766      /* events.MAX_TEXT_FIELD_BYTES */
#define MAX_ID_BYTES 512          /* events.MAX_ID_BYTES */
#define INDEXED_STRING_CHARS 8191 /* events.INDEXED_STRING_LENGTH */

/* The event's fields; the families are in the order of schema.FAMILY_FIELDS. */
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
    Buffer out;
    Buffer doc;
    FieldSet fields;
    int no_memory;
    int spaced;    /* whitespace was skipped within the current event */
    int normalise; /* the current event's document is not its own bytes (see read_event) */
    int writing;   /* the current event's members go to `doc` (see read_event) */
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

static int field_of(const char *key, Py_ssize_t length) {
    for (int f = 0; f < F_COUNT; f++)
        if ((size_t)length == FIELD_LENGTHS[f] && key[0] == FIELD_NAMES[f][0] &&
            memcmp(key, FIELD_NAMES[f], (size_t)length) == 0)
            return f;
    return -1;
}

/* The members of an event (r->p is past its `{`) up to its `}`; to r->doc if r->writing. */
/* The start of a member in the document: a comma unless it is the first, its name, a colon. */
static inline int begin_member(Reader *r, int *written, const char *name, const char *name_end) {
    if ((*written)++ && add(r, &r->doc, ",", 1) < 0)
        return NOT_COMMON;
    if (add(r, &r->doc, name, (size_t)(name_end - name)) < 0 || add(r, &r->doc, ":", 1) < 0)
        return NOT_COMMON;
    return 0;
}

static int read_members(Reader *r, Py_ssize_t event, const char **id, Py_ssize_t *id_length,
                        const char **timestamp) {
    unsigned seen = 0;
    int written = 0;
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
        const char *name = start, *name_end = stop;
        skip_space(r);
        if (field >= FIRST_FAMILY) {
            if (begin_member(r, &written, name, name_end) < 0 ||
                read_family(r, field, event, &properties) < 0)
                return NOT_COMMON;
        } else {
            /* Text without escapes (so its bytes are its UTF-8); the timestamp in canonical
             * form. */
            if (read_string(r, 0, &start, &stop, &chars) < 0)
                return NOT_COMMON;
            Py_ssize_t bytes = stop - start - 2;
            if (field == F_TIMESTAMP) {
                if (!is_canonical_instant(start + 1, bytes) ||
                    memcmp(start + 1, r->oldest, INSTANT_LENGTH) < 0 ||
                    memcmp(start + 1, r->newest, INSTANT_LENGTH) > 0)
                    return NOT_COMMON;
                *timestamp = start + 1;
            } else if (chars < 1) {
                /* An empty optional text is stored as none; an empty required one is wrong. */
                if (field == F_ID || field == F_SYSTEM || field == F_AGENT_ID)
                    return NOT_COMMON;
                r->normalise = 1;
                goto next;
            } else if (bytes > (field == F_ID ? MAX_ID_BYTES : MAX_TEXT_BYTES)) {
                return NOT_COMMON;
            } else if (field == F_ID) {
                *id = start;
                *id_length = stop - start;
            }
            if (begin_member(r, &written, name, name_end) < 0 ||
                add(r, &r->doc, start, (size_t)(stop - start)) < 0)
                return NOT_COMMON;
        }
    next:;
        int end = member_end(r);
        if (end == NOT_COMMON)
            return NOT_COMMON;
        if (end == '}')
            break;
    }
    return (seen & REQUIRED) == REQUIRED ? 0 : NOT_COMMON;
}

/* One event: its action and document to r->out. The first pass only checks. Most events
 * hold no whitespace and need no normalising, so their document is their own bytes;
 * otherwise a second pass writes the members to r->doc: compacted, one-value arrays
 * unwrapped, bare NaN and Infinity quoted, empty optional texts left out. */
static int read_event(Reader *r, Py_ssize_t event, const char *action, Py_ssize_t action_length,
                      const char *tail, Py_ssize_t tail_length) {
    if (expect(r, '{') < 0)
        return NOT_COMMON;
    const char *begin = r->p - 1;
    const char *id = NULL, *timestamp = NULL;
    Py_ssize_t id_length = 0;
    r->spaced = 0;
    r->normalise = 0;
    r->writing = 0;
    if (read_members(r, event, &id, &id_length, &timestamp) < 0)
        return NOT_COMMON;
    const char *document = begin;
    size_t document_length = (size_t)(r->p - 1 - begin); /* without the closing brace */
    r->normalised += r->normalise;
    if (r->spaced || r->normalise) {
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
"transcode(body, action, tail, max_events, max_properties, max_fields, max_name, max_string,\n"
"          oldest, newest)\n"
"--\n\n"
"(bulk body, event count, property fields, non-finite values, long strings, normalised\n"
"events) for a common batch, else None.\n\n"
"action: the start of each action line up to the month, b'{\"create\":{\"_index\":\"p-s-';\n"
"tail: what ends each document, b',\"space\":\"s\"}\\n'; oldest, newest: canonical instants.");

static PyObject *transcode(PyObject *module, PyObject *args) {
    Py_buffer body, action, tail, oldest, newest;
    Py_ssize_t max_events, max_properties, max_fields, max_name, max_string;
    if (!PyArg_ParseTuple(args, "y*y*y*nnnnny*y*", &body, &action, &tail, &max_events,
                          &max_properties, &max_fields, &max_name, &max_string, &oldest, &newest))
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
    r.max_fields = max_fields;
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
        result = Py_BuildValue("(NnNnnn)", bytes, events, fields, r.non_finite, r.long_strings,
                               r.normalised);
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
    init_tokens();
    init_field_lengths();
    return PyModule_Create(&module);
}
