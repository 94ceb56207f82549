/* `verdicts`: the rules check of events already apart (the agents' `plain_each`, HQ's
 * `plain_events`), each read exactly as `transcode` reads the batch of that event alone.
 * Included by _transcode.c after `read_event`, which it uses. */
#ifndef LOGSPACE_VERDICTS_H
#define LOGSPACE_VERDICTS_H

PyDoc_STRVAR(verdicts_doc,
"verdicts(events, max_events, max_properties, max_fields, max_name, max_string, oldest, newest,\n"
"         release=False)\n"
"--\n\n"
"For each event (the bytes of one JSON object), whether `transcode` takes the batch of that\n"
"event alone as it is: accepted, and not normalised. One call for many events, which writes no\n"
"lines and builds no set of fields. `release`: read a group of events without holding the GIL.");

/* Each event is read exactly as `transcode` reads the batch `[event]`: the same reader, fresh
 * for every event; only what is returned differs. Returns 1 (plain), 0, or -1 (no memory). */
static int verdict(Reader *r, const Py_buffer *event, Py_ssize_t max_events,
                   Py_ssize_t max_properties, Py_ssize_t max_fields, Py_ssize_t max_name,
                   Py_ssize_t max_string, const char *oldest, const char *newest,
                   int without_gil) {
    /* A reader as new as transcode's: no fields seen, nothing written, nothing counted. */
    Buffer out = r->out, doc = r->doc;
    FieldSet fields = r->fields;
    out.length = doc.length = 0;
    if (fields.capacity > 64) {
        PyMem_RawFree(fields.slots);
        fields = (FieldSet){0};
    } else if (fields.used) {
        memset(fields.slots, 0, fields.capacity * sizeof(Field));
        fields.used = 0;
    }
    *r = (Reader){.p = event->buf,
                  .end = (const char *)event->buf + event->len,
                  .max_events = max_events,
                  .max_properties = max_properties,
                  .max_fields = max_fields,
                  .max_name = max_name,
                  .max_string = max_string,
                  .oldest = oldest,
                  .newest = newest,
                  .out = out,
                  .doc = doc,
                  .fields = fields,
                  .without_gil = without_gil};
    int plain = max_events >= 1 && read_event(r, 0, "", 0, "", 0) == 0;
    skip_space(r);
    plain = plain && r->p == r->end && r->normalised == 0;
    return r->no_memory ? -1 : plain;
}

/* Enough events that releasing the GIL for them pays (an agent's group: a thousand). Only the
 * agents ask for it (`release`): HQ's own calls keep the GIL, as before. */
#define VERDICTS_WITHOUT_GIL 16

static PyObject *verdicts(PyObject *module, PyObject *args) {
    PyObject *events;
    Py_buffer oldest, newest;
    Py_ssize_t max_events, max_properties, max_fields, max_name, max_string;
    int release = 0;
    if (!PyArg_ParseTuple(args, "Onnnnny*y*|p", &events, &max_events, &max_properties,
                          &max_fields, &max_name, &max_string, &oldest, &newest, &release))
        return NULL;
    PyObject *result = NULL, *sequence = NULL;
    Py_buffer *buffers = NULL;
    signed char *plain = NULL;
    Py_ssize_t count = 0, held = 0;
    Reader r = {0};
    if (oldest.len != INSTANT_LENGTH || newest.len != INSTANT_LENGTH) {
        PyErr_SetString(PyExc_ValueError, "oldest and newest must be canonical instants");
        goto done;
    }
    sequence = PySequence_Fast(events, "events must be a sequence of bytes");
    if (sequence == NULL)
        goto done;
    count = PySequence_Fast_GET_SIZE(sequence);
    /* Every event's bytes are held first; then, for a group of them, the GIL is released while
     * they are read (the reader touches no Python object: raw memory, no exception), so an
     * agent's application threads run meanwhile. */
    buffers = PyMem_Calloc((size_t)count + 1, sizeof(Py_buffer));
    plain = PyMem_Calloc((size_t)count + 1, 1);
    if (buffers == NULL || plain == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; held < count; held++)
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(sequence, held), &buffers[held],
                               PyBUF_SIMPLE) < 0)
            goto done;
    int no_memory = 0;
    if (release && count >= VERDICTS_WITHOUT_GIL) {
        const char *old = oldest.buf, *new = newest.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < count && !no_memory; i++) {
            int v = verdict(&r, &buffers[i], max_events, max_properties, max_fields, max_name,
                            max_string, old, new, 1);
            no_memory = v < 0;
            /* 2: read again below, with the GIL (a number only Python can judge). */
            plain[i] = (signed char)(r.needs_gil ? 2 : v);
        }
        Py_END_ALLOW_THREADS
    } else {
        memset(plain, 2, (size_t)count);
    }
    for (Py_ssize_t i = 0; i < count && !no_memory; i++)
        if (plain[i] == 2) {
            int v = verdict(&r, &buffers[i], max_events, max_properties, max_fields, max_name,
                            max_string, oldest.buf, newest.buf, 0);
            no_memory = v < 0;
            plain[i] = (signed char)v;
        }
    if (no_memory) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyList_New(count);
    if (result == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < count; i++)
        PyList_SET_ITEM(result, i, Py_NewRef(plain[i] ? Py_True : Py_False));
done:
    for (Py_ssize_t i = 0; i < held; i++)
        PyBuffer_Release(&buffers[i]);
    PyMem_Free(buffers);
    PyMem_Free(plain);
    Py_XDECREF(sequence);
    PyMem_RawFree(r.out.data);
    PyMem_RawFree(r.doc.data);
    PyMem_RawFree(r.fields.slots);
    PyBuffer_Release(&oldest);
    PyBuffer_Release(&newest);
    return result;
}

#endif
