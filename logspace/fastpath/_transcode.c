/* The common batch, checked and written as a `_bulk` body in one pass, without Python objects.
 *
 * `transcode` reads a JSON array of events and, when every event is of the common kind
 * (see logspace/fastpath/__init__.py), writes per event the `create` action line and the document
 * line (the event's own members, compacted, plus `space`). It returns None for anything it
 * does not accept as is: the slower paths then check the batch again and name every problem.
 * So this file may be strict without loss, but must never accept what the thorough decoder
 * (logspace/decoder.py) would refuse or change; tests/ingest/test_transcoder.py and
 * tests/ingest/test_decode_batch.py hold it to that, and `make fuzz` looks for the difference.
 */
#define PY_SSIZE_T_CLEAN
#include "_reader.h"
#include "_properties.h"
#include "_requestjson.h"
#include "_logjson.h"

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
    /* {"create":{"_index":"<prefix>-<space>-<period>","_id":"<id>"}}\n then the document;
     * the period as logspace.partitions.period writes it: YYYY.MM, YYYY.qN or YYYY. */
    char period[7] = {timestamp[0], timestamp[1], timestamp[2], timestamp[3], '.', timestamp[5],
                      timestamp[6]};
    size_t period_length = 7;
    if (r->partition == 1) {
        period[5] = 'q';
        period[6] = (char)('1' + ((timestamp[5] - '0') * 10 + (timestamp[6] - '0') - 1) / 3);
    } else if (r->partition == 2) {
        period_length = 4;
    }
    if (add(r, &r->out, action, (size_t)action_length) < 0 ||
        add(r, &r->out, period, period_length) < 0 ||
        add(r, &r->out, "\",\"_id\":", 8) < 0 || add(r, &r->out, id, (size_t)id_length) < 0 ||
        add(r, &r->out, "}}\n", 3) < 0 || add(r, &r->out, document, document_length) < 0 ||
        add(r, &r->out, tail, (size_t)tail_length) < 0)
        return NOT_COMMON;
    return 0;
}

/* `family.name` strs made before, by field: a fleet's batches use the same few dozen property
 * fields over and over, and a str made (and hashed by the set) anew for each was about 2 % of
 * a small request's CPU. Direct-mapped by the field's hash; a collision replaces the entry.
 * Only touched with the GIL held (`transcode` holds it). */
#define NAME_CACHE_SLOTS 1024
static PyObject *name_cache[NAME_CACHE_SLOTS];

/* A new reference to the str `family.name` of `field`, all ASCII (see read_name). */
static PyObject *field_name(const Field *field, Buffer *text) {
    size_t at = (size_t)field->hash & (NAME_CACHE_SLOTS - 1);
    const char *family = FIELD_NAMES[field->family];
    size_t family_length = FIELD_LENGTHS[field->family];
    size_t length = family_length + 1 + (size_t)field->length;
    PyObject *cached = name_cache[at];
    if (cached != NULL && (size_t)PyUnicode_GET_LENGTH(cached) == length) {
        const char *data = (const char *)PyUnicode_1BYTE_DATA(cached);
        if (memcmp(data, family, family_length) == 0 && data[family_length] == '.' &&
            memcmp(data + family_length + 1, field->name, (size_t)field->length) == 0) {
            Py_INCREF(cached);
            return cached;
        }
    }
    text->length = 0;
    if (buffer_add(text, family, family_length) < 0 || buffer_add(text, ".", 1) < 0 ||
        buffer_add(text, field->name, (size_t)field->length) < 0)
        return PyErr_NoMemory();
    PyObject *name = PyUnicode_DecodeASCII(text->data, (Py_ssize_t)text->length, NULL);
    if (name == NULL)
        return NULL;
    Py_INCREF(name);
    name_cache[at] = name;
    Py_XDECREF(cached);
    return name;
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
        PyObject *name = field_name(field, &text);
        if (name == NULL || PySet_Add(names, name) < 0) {
            Py_XDECREF(name);
            goto failed;
        }
        Py_DECREF(name);
    }
    PyMem_RawFree(text.data);
    return names;
failed:
    PyMem_RawFree(text.data);
    Py_DECREF(names);
    return NULL;
}

PyDoc_STRVAR(transcode_doc,
"transcode(body, action, tail, max_events, max_properties, max_fields, max_name, max_string,\n"
"          oldest, newest, partition=0)\n"
"--\n\n"
"(bulk body, event count, property fields, non-finite values, long strings, normalised\n"
"events) for a common batch, else None.\n\n"
"action: the start of each action line up to the period, b'{\"create\":{\"_index\":\"p-s-';\n"
"tail: what ends each document, b',\"space\":\"s\"}\\n'; oldest, newest: canonical instants;\n"
"partition: of the index names, 0 month (YYYY.MM), 1 quarter (YYYY.qN), 2 year (YYYY).");

static PyObject *transcode(PyObject *module, PyObject *args) {
    Py_buffer body, action, tail, oldest, newest;
    Py_ssize_t max_events, max_properties, max_fields, max_name, max_string;
    int partition = 0;
    if (!PyArg_ParseTuple(args, "y*y*y*nnnnny*y*|i", &body, &action, &tail, &max_events,
                          &max_properties, &max_fields, &max_name, &max_string, &oldest, &newest,
                          &partition))
        return NULL;
    PyObject *result = NULL;
    Reader r = {0};
    if (oldest.len != INSTANT_LENGTH || newest.len != INSTANT_LENGTH) {
        PyErr_SetString(PyExc_ValueError, "oldest and newest must be canonical instants");
        goto done;
    }
    if (partition < 0 || partition > 2) {
        PyErr_SetString(PyExc_ValueError, "partition must be 0 (month), 1 (quarter) or 2 (year)");
        goto done;
    }
    r.partition = partition;
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
    PyMem_RawFree(r.out.data);
    PyMem_RawFree(r.doc.data);
    PyMem_RawFree(r.fields.slots);
    PyBuffer_Release(&body);
    PyBuffer_Release(&action);
    PyBuffer_Release(&tail);
    PyBuffer_Release(&oldest);
    PyBuffer_Release(&newest);
    return result;
}

#include "_verdicts.h"
#include "_leanrequest.h"

static PyMethodDef methods[] = {
    {"transcode", transcode, METH_VARARGS, transcode_doc},
    {"verdicts", verdicts, METH_VARARGS, verdicts_doc},
    {"asgi_json", asgi_json, METH_VARARGS, asgi_json_doc},
    {"log_json", log_json, METH_VARARGS, log_json_doc},
    {"lean_request", lean_request, METH_VARARGS, lean_request_doc},
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
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    /* What this file assumes of logspace/events.py, for tests/ingest/test_transcoder.py. */
    PyObject *names = PyTuple_New(F_COUNT);
    if (names == NULL)
        goto fail;
    for (int f = 0; f < F_COUNT; f++) {
        PyObject *name = PyUnicode_FromString(FIELD_NAMES[f]);
        if (name == NULL) {
            Py_DECREF(names);
            goto fail;
        }
        PyTuple_SET_ITEM(names, f, name);
    }
    if (PyModule_AddObject(m, "FIELD_NAMES", names) < 0) {
        Py_DECREF(names);
        goto fail;
    }
    if (PyModule_AddIntConstant(m, "MAX_TEXT_BYTES", MAX_TEXT_BYTES) < 0 ||
        PyModule_AddIntConstant(m, "MAX_ID_BYTES", MAX_ID_BYTES) < 0 ||
        PyModule_AddIntConstant(m, "INDEXED_STRING_CHARS", INDEXED_STRING_CHARS) < 0 ||
        PyModule_AddIntConstant(m, "INSTANT_LENGTH", INSTANT_LENGTH) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
