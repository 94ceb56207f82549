/* The log agent's events written as JSON in C: `log_json`, the fast path of
 * `LogEvents.encoded` (logspace/agent/loghandler.py) for the log handler's drafts.
 *
 * It writes per draft exactly the bytes orjson writes for the event `LogEvents` builds from
 * it, stamped by the sender, or returns None for a group it does not take as is (a value of an
 * unexpected type, a text that is not valid UTF-8, a number out of range): the Python path
 * then builds the events and encodes them. The event's head (type, system, agent id) and the
 * timestamp are made in Python, by callables called only when they change from one draft to
 * the next (the timestamp once a second: see `json_group_stamp`).
 * tests/agent/test_agent_loghandler.py holds the two paths equal.
 *
 * It reads only Python objects that the handler took from log records, in the sender's thread.
 */
#ifndef LOGSPACE_LOGJSON_H
#define LOGSPACE_LOGJSON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#include "_jsonwriter.h"

/* `record.created` in milliseconds as `instant_from_timestamp` works it out: whole seconds
 * truncated, the fraction rounded to microseconds half to even (as Python's `round`), then
 * floored to milliseconds. 0 on success, DECLINE for a value too large to be a time. */
static int created_ms(double seconds, long long *ms) {
    if (!isfinite(seconds) || fabs(seconds) > 9.0e12)
        return DECLINE;
    long long whole = (long long)seconds;
    double micro = (seconds - (double)whole) * 1000000.0;
    double rounded = round(micro);
    if (fabs(micro - rounded) == 0.5)
        rounded = 2.0 * round(micro / 2.0);
    *ms = whole * 1000 + floor_div((long long)rounded, 1000);
    return 0;
}

/* `,"name":` and a Python int, written as orjson writes it; DECLINE for anything but an
 * int of 64 bits (orjson writes booleans otherwise and refuses larger ones). */
static int json_member_int(JsonOut *o, const char *prefix, size_t prefix_length,
                           PyObject *value) {
    if (!PyLong_CheckExact(value))
        return DECLINE;
    int overflow;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow)
        return DECLINE;
    if (number == -1 && PyErr_Occurred())
        return -1;
    if (json_add(o, prefix, prefix_length) < 0)
        return -1;
    return json_number(o, number);
}

#define MEMBER(name) ",\"" name "\":", sizeof(",\"" name "\":") - 1

PyDoc_STRVAR(log_json_doc,
"log_json(drafts, ids, head, stamp, tail) -> list[bytes] | None\n"
"\n"
"The JSON of each log draft with its id, as orjson encodes the event LogEvents builds from\n"
"it; None to decline. head(type, agent_id) -> bytes is called when its arguments change,\n"
"stamp(milliseconds) -> bytes for the first millisecond of each second (the others are\n"
"its text with their digits in, where it ends in .000Z).");

static PyObject *log_json(PyObject *module, PyObject *args) {
    PyObject *given_drafts, *given_ids, *head_of, *stamp_of;
    Py_buffer tail;
    if (!PyArg_ParseTuple(args, "O!O!OOy*", &PyList_Type, &given_drafts, &PyList_Type,
                          &given_ids, &head_of, &stamp_of, &tail))
        return NULL;
    JsonGroup g = {0};
    JsonOut *o = &g.out;
    int declined = 0;
    PyObject *result = json_group_open(&g, given_drafts, given_ids);
    if (result == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < g.count; i++) {
        PyObject *draft = PyList_GET_ITEM(g.drafts, i);
        if (!PyTuple_CheckExact(draft) || PyTuple_GET_SIZE(draft) != 12)
            goto decline;
        /* type, agent id, created, category, message, level, level number, module, function,
         * line, thread name, exception (loghandler.LogValues) */
        PyObject *event_type = PyTuple_GET_ITEM(draft, 0), *agent = PyTuple_GET_ITEM(draft, 1),
                 *created = PyTuple_GET_ITEM(draft, 2), *exception = PyTuple_GET_ITEM(draft, 11);
        PyObject *id = PyList_GET_ITEM(g.ids, i);
        if (!PyUnicode_Check(id) || !PyFloat_CheckExact(created))
            goto decline;
        long long milliseconds;
        if (created_ms(PyFloat_AS_DOUBLE(created), &milliseconds) == DECLINE)
            goto decline;

        if (json_group_head(&g, head_of, event_type, agent) < 0)
            goto failed;
        int stamped = json_group_stamp(&g, stamp_of, milliseconds);
        if (stamped < 0)
            goto failed;
        if (stamped > 0)
            goto decline;

        Py_ssize_t id_length;
        const char *id_text = PyUnicode_AsUTF8AndSize(id, &id_length);
        if (id_text == NULL) {
            PyErr_Clear();
            goto decline;
        }
        o->length = 0;
        int status_ = 0;
        JSON_STEP(JSON_ADD_LITERAL(o, "{\"id\":\""));
        JSON_STEP(json_add(o, id_text, (size_t)id_length));
        JSON_STEP(json_add(o, PyBytes_AS_STRING(g.head), (size_t)PyBytes_GET_SIZE(g.head)));
        JSON_STEP(json_add(o, g.stamp, g.stamp_len));
        JSON_STEP(JSON_ADD_LITERAL(o, "\",\"string-properties\":{\"category\":"));
        JSON_STEP(json_member_str(o, "", 0, PyTuple_GET_ITEM(draft, 3)));
        JSON_STEP(json_member_str(o, MEMBER("message"), PyTuple_GET_ITEM(draft, 4)));
        JSON_STEP(json_member_str(o, MEMBER("level"), PyTuple_GET_ITEM(draft, 5)));
        JSON_STEP(json_member_str(o, MEMBER("module"), PyTuple_GET_ITEM(draft, 7)));
        JSON_STEP(json_member_str(o, MEMBER("function"), PyTuple_GET_ITEM(draft, 8)));
        JSON_STEP(json_member_str(o, MEMBER("thread_name"), PyTuple_GET_ITEM(draft, 10)));
        if (exception != Py_None)
            JSON_STEP(json_member_str(o, MEMBER("exception"), exception));
        JSON_STEP(JSON_ADD_LITERAL(o, "},\"integer-properties\":{"));
        JSON_STEP(json_member_int(o, "\"level_number\":", sizeof("\"level_number\":") - 1,
                                  PyTuple_GET_ITEM(draft, 6)));
        JSON_STEP(json_member_int(o, MEMBER("line"), PyTuple_GET_ITEM(draft, 9)));
        JSON_STEP(JSON_ADD_LITERAL(o, "}"));
        JSON_STEP(json_add(o, tail.buf, (size_t)tail.len));
        PyObject *body = PyBytes_FromStringAndSize(o->data, (Py_ssize_t)o->length);
        if (body == NULL)
            goto failed;
        PyList_SET_ITEM(result, i, body);
    }
    goto done;
decline:
    declined = 1;
failed:
    Py_CLEAR(result);
done:
    json_group_close(&g);
    PyBuffer_Release(&tail);
    if (declined)
        Py_RETURN_NONE;
    return result;
}

#undef MEMBER

#endif
