/* The agent's ASGI request events written as JSON in C: `asgi_json`, the fast path of
 * `RequestEvents.encoded` (logspace/agent/requestevent.py) for the ASGI middleware's drafts.
 *
 * It writes per draft exactly the bytes the Python `_encoded` writes (which orjson's encoding
 * of the built event is held to), or returns None for a group it does not take as is (a value
 * of an unexpected type, a text that is not valid UTF-8, a number out of range): the Python
 * path then does the work. What is worked out once per group stays in Python and is passed in
 * as callables, called only when the value changes from one draft to the next: the event's
 * head (type, system, agent id), the timestamp of a millisecond, the domain and port of a
 * host. tests/agent/test_agent_requestevent.py holds the two paths equal.
 *
 * It reads only Python objects the application's middleware made (no bytes from the network
 * are parsed here: the texts are copied with JSON's escapes), in the sender's thread.
 */
#ifndef LOGSPACE_REQUESTJSON_H
#define LOGSPACE_REQUESTJSON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "_jsontokens.h"

/* The JSON written so far: the reader's growing buffer (`_jsontokens.h`). */
typedef Buffer JsonOut;

static int json_reserve(JsonOut *o, size_t more) {
    if (buffer_reserve(o, more) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static inline int json_add(JsonOut *o, const char *bytes, size_t length) {
    if (json_reserve(o, length) < 0)
        return -1;
    memcpy(o->data + o->length, bytes, length);
    o->length += length;
    return 0;
}

#define JSON_ADD_LITERAL(o, text) json_add((o), (text), sizeof(text) - 1)

/* One byte < 0x80 as orjson writes it inside a string: `"` and `\` escaped, the control
 * characters as \b \t \n \f \r or \u00xx (lowercase hex), everything else as it is. Returns
 * the bytes written to `to` (room for 6). */
static inline size_t json_escape_ascii(unsigned char c, char *to) {
    static const char hex[] = "0123456789abcdef";
    if (c >= 0x20 && c != '"' && c != '\\') {
        to[0] = (char)c;
        return 1;
    }
    to[0] = '\\';
    switch (c) {
    case '"': to[1] = '"'; return 2;
    case '\\': to[1] = '\\'; return 2;
    case '\b': to[1] = 'b'; return 2;
    case '\t': to[1] = 't'; return 2;
    case '\n': to[1] = 'n'; return 2;
    case '\f': to[1] = 'f'; return 2;
    case '\r': to[1] = 'r'; return 2;
    default:
        memcpy(to + 1, "u00", 3);
        to[4] = hex[c >> 4];
        to[5] = hex[c & 15];
        return 6;
    }
}

/* UTF-8 text as a JSON string, quotes included. */
static int json_utf8(JsonOut *o, const char *text, Py_ssize_t length) {
    if (json_reserve(o, (size_t)length * 6 + 2) < 0)
        return -1;
    char *to = o->data + o->length;
    *to++ = '"';
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x80)
            *to++ = (char)c;
        else
            to += json_escape_ascii(c, to);
    }
    *to++ = '"';
    o->length = (size_t)(to - o->data);
    return 0;
}

/* Bytes read as latin-1 (each byte the code point of its value) as a JSON string. */
static int json_latin1(JsonOut *o, const char *text, Py_ssize_t length) {
    if (json_reserve(o, (size_t)length * 6 + 2) < 0)
        return -1;
    char *to = o->data + o->length;
    *to++ = '"';
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x80) {
            *to++ = (char)(0xC0 | (c >> 6));
            *to++ = (char)(0x80 | (c & 0x3F));
        } else {
            to += json_escape_ascii(c, to);
        }
    }
    *to++ = '"';
    o->length = (size_t)(to - o->data);
    return 0;
}

/* Declines (returns 1) for a value of a type the Python path would treat otherwise. */
#define DECLINE 1

/* `,"name":` and the str `value` as a JSON string; 1 (decline) if it is no str or not
 * valid UTF-8 (a lone surrogate: orjson refuses it, the Python path reports it). */
static int json_member_str(JsonOut *o, const char *prefix, size_t prefix_length,
                           PyObject *value) {
    if (!PyUnicode_Check(value))
        return DECLINE;
    Py_ssize_t length;
    const char *text = PyUnicode_AsUTF8AndSize(value, &length);
    if (text == NULL) {
        PyErr_Clear();
        return DECLINE;
    }
    if (json_add(o, prefix, prefix_length) < 0 || json_utf8(o, text, length) < 0)
        return -1;
    return 0;
}

/* A header value as the scope has it (bytes, latin-1) written as `,"name":"..."` unless it
 * is None or empty; 1 for any other type. */
static int json_member_latin1(JsonOut *o, const char *prefix, size_t prefix_length,
                              PyObject *value) {
    if (value == Py_None)
        return 0;
    if (!PyBytes_CheckExact(value))
        return DECLINE;
    Py_ssize_t length = PyBytes_GET_SIZE(value);
    if (length == 0)
        return 0;
    if (json_add(o, prefix, prefix_length) < 0 ||
        json_latin1(o, PyBytes_AS_STRING(value), length) < 0)
        return -1;
    return 0;
}

static int json_number(JsonOut *o, long long value) {
    char digits[32];
    int length = snprintf(digits, sizeof digits, "%lld", value);
    return json_add(o, digits, (size_t)length);
}

/* Floor division, as Python's `//` (the values are never negative in practice). */
static inline long long floor_div(long long a, long long b) {
    long long q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* A bytes result of a callable, checked; NULL with an exception otherwise. */
static PyObject *called_bytes(PyObject *result) {
    if (result != NULL && !PyBytes_CheckExact(result)) {
        Py_DECREF(result);
        PyErr_SetString(PyExc_TypeError, "a callable of asgi_json must return bytes");
        return NULL;
    }
    return result;
}

static inline int same(PyObject *a, PyObject *b) {
    if (a == b)
        return 1;
    if (b == NULL)
        return 0;
    int equal = PyObject_RichCompareBool(a, b, Py_EQ);
    if (equal < 0)
        PyErr_Clear();
    return equal > 0;
}

PyDoc_STRVAR(asgi_json_doc,
"asgi_json(drafts, ids, head, stamp, where, tail) -> list[bytes] | None\n"
"\n"
"The JSON of each ASGI request draft with its id, as requestevent._encoded writes it; None\n"
"to decline. head(type, agent_id) -> bytes, stamp(milliseconds) -> bytes and\n"
"where(host, server, scheme) -> (bytes, bytes) are called when their arguments change.");

static PyObject *asgi_json(PyObject *module, PyObject *args) {
    PyObject *given_drafts, *given_ids, *head_of, *stamp_of, *where_of;
    Py_buffer tail;
    if (!PyArg_ParseTuple(args, "O!O!OOOy*", &PyList_Type, &given_drafts, &PyList_Type,
                          &given_ids, &head_of, &stamp_of, &where_of, &tail))
        return NULL;
    JsonOut o = {0};
    PyObject *result = NULL;
    /* Copies of the lists: the callables run Python code, which must not free a draft or an
     * id out from under the borrowed references below by changing the caller's lists. */
    PyObject *drafts = PyList_GetSlice(given_drafts, 0, PY_SSIZE_T_MAX);
    PyObject *ids = PyList_GetSlice(given_ids, 0, PY_SSIZE_T_MAX);
    /* The last values seen and what was made of them (owned references). */
    PyObject *last_type = NULL, *last_agent = NULL, *head = NULL;
    PyObject *last_host = NULL, *last_server = NULL, *last_scheme = NULL, *where = NULL;
    PyObject *stamp = NULL;
    long long stamped_ms = 0;
    int declined = 0;
    if (drafts == NULL || ids == NULL)
        goto done;
    Py_ssize_t count = PyList_GET_SIZE(drafts);
    if (PyList_GET_SIZE(ids) != count) {
        PyErr_SetString(PyExc_ValueError, "as many ids as drafts");
        goto done;
    }
    result = PyList_New(count);
    if (result == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *draft = PyList_GET_ITEM(drafts, i);
        if (!PyTuple_CheckExact(draft) || PyTuple_GET_SIZE(draft) != 14)
            goto decline;
        PyObject *event_type = PyTuple_GET_ITEM(draft, 0), *agent = PyTuple_GET_ITEM(draft, 1),
                 *arrived = PyTuple_GET_ITEM(draft, 2), *elapsed = PyTuple_GET_ITEM(draft, 3),
                 *scheme = PyTuple_GET_ITEM(draft, 4), *server = PyTuple_GET_ITEM(draft, 5),
                 *path = PyTuple_GET_ITEM(draft, 6), *query = PyTuple_GET_ITEM(draft, 7),
                 *method = PyTuple_GET_ITEM(draft, 8), *client = PyTuple_GET_ITEM(draft, 9),
                 *host = PyTuple_GET_ITEM(draft, 10), *request_id = PyTuple_GET_ITEM(draft, 11),
                 *status = PyTuple_GET_ITEM(draft, 12), *location = PyTuple_GET_ITEM(draft, 13);
        PyObject *id = PyList_GET_ITEM(ids, i);
        if (!PyUnicode_Check(id) || !PyLong_CheckExact(arrived) || !PyLong_CheckExact(elapsed) ||
            !PyLong_CheckExact(status) || !PyUnicode_Check(scheme) ||
            (host != Py_None && !PyBytes_CheckExact(host)))
            goto decline;
        int overflow;
        long long arrived_ns = PyLong_AsLongLongAndOverflow(arrived, &overflow);
        if (overflow)
            goto decline;
        long long elapsed_ns = PyLong_AsLongLongAndOverflow(elapsed, &overflow);
        if (overflow)
            goto decline;
        long long code = PyLong_AsLongLongAndOverflow(status, &overflow);
        if (overflow)
            goto decline;
        /* The client's address: `client[0] if client else None`, written where it is truthy. */
        PyObject *ip = Py_None;
        if (client != Py_None) {
            if (!PyTuple_Check(client) && !PyList_Check(client))
                goto decline;
            if (PySequence_Fast_GET_SIZE(client) > 0)
                ip = PySequence_Fast_GET_ITEM(client, 0);
        }
        if (ip != Py_None && !PyUnicode_Check(ip))
            goto decline;

        if (head == NULL || !same(event_type, last_type) || !same(agent, last_agent)) {
            Py_XSETREF(head, called_bytes(PyObject_CallFunctionObjArgs(head_of, event_type,
                                                                        agent, NULL)));
            if (head == NULL)
                goto failed;
            Py_XSETREF(last_type, Py_NewRef(event_type));
            Py_XSETREF(last_agent, Py_NewRef(agent));
        }
        long long milliseconds = floor_div(arrived_ns, 1000000);
        if (stamp == NULL || milliseconds != stamped_ms) {
            PyObject *ms = PyLong_FromLongLong(milliseconds);
            if (ms == NULL)
                goto failed;
            Py_XSETREF(stamp, called_bytes(PyObject_CallOneArg(stamp_of, ms)));
            Py_DECREF(ms);
            if (stamp == NULL)
                goto failed;
            stamped_ms = milliseconds;
        }
        if (where == NULL || !same(host, last_host) || !same(server, last_server) ||
            !same(scheme, last_scheme)) {
            Py_XSETREF(where, PyObject_CallFunctionObjArgs(where_of, host, server, scheme, NULL));
            if (where == NULL)
                goto failed;
            if (!PyTuple_CheckExact(where) || PyTuple_GET_SIZE(where) != 2 ||
                !PyBytes_CheckExact(PyTuple_GET_ITEM(where, 0)) ||
                !PyBytes_CheckExact(PyTuple_GET_ITEM(where, 1))) {
                PyErr_SetString(PyExc_TypeError, "where must return two bytes");
                goto failed;
            }
            Py_XSETREF(last_host, Py_NewRef(host));
            Py_XSETREF(last_server, Py_NewRef(server));
            Py_XSETREF(last_scheme, Py_NewRef(scheme));
        }

        Py_ssize_t id_length;
        const char *id_text = PyUnicode_AsUTF8AndSize(id, &id_length);
        if (id_text == NULL) {
            PyErr_Clear();
            goto decline;
        }
        o.length = 0;
        int status_ = 0;
        long long microseconds = floor_div(elapsed_ns, 1000);
        PyObject *domain = PyTuple_GET_ITEM(where, 0), *port = PyTuple_GET_ITEM(where, 1);
#define STEP(call)                                                                             \
    do {                                                                                       \
        status_ = (call);                                                                      \
        if (status_ < 0)                                                                       \
            goto failed;                                                                       \
        if (status_ == DECLINE)                                                                \
            goto decline;                                                                      \
    } while (0)
        STEP(JSON_ADD_LITERAL(&o, "{\"id\":\""));
        STEP(json_add(&o, id_text, (size_t)id_length));
        STEP(json_add(&o, PyBytes_AS_STRING(head), (size_t)PyBytes_GET_SIZE(head)));
        STEP(json_add(&o, PyBytes_AS_STRING(stamp), (size_t)PyBytes_GET_SIZE(stamp)));
        STEP(json_member_str(&o, "\",\"string-properties\":{\"protocol\":",
                             sizeof("\",\"string-properties\":{\"protocol\":") - 1, scheme));
        STEP(json_member_str(&o, ",\"path\":", sizeof(",\"path\":") - 1, path));
        STEP(json_member_str(&o, ",\"http_method\":", sizeof(",\"http_method\":") - 1, method));
        STEP(json_add(&o, PyBytes_AS_STRING(domain), (size_t)PyBytes_GET_SIZE(domain)));
        if (!PyBytes_CheckExact(query))
            goto decline;
        STEP(json_member_latin1(&o, ",\"query_string\":", sizeof(",\"query_string\":") - 1,
                                query));
        STEP(json_member_latin1(&o, ",\"request_id\":", sizeof(",\"request_id\":") - 1,
                                request_id));
        if (ip != Py_None && PyUnicode_GET_LENGTH(ip) > 0)
            STEP(json_member_str(&o, ",\"ip_address\":", sizeof(",\"ip_address\":") - 1, ip));
        STEP(json_member_latin1(&o, ",\"location\":", sizeof(",\"location\":") - 1, location));
        STEP(JSON_ADD_LITERAL(&o, "},\"integer-properties\":{\"response_code\":"));
        STEP(json_number(&o, code));
        STEP(json_add(&o, PyBytes_AS_STRING(port), (size_t)PyBytes_GET_SIZE(port)));
        STEP(JSON_ADD_LITERAL(&o, "},\"long-properties\":{\"duration\":"));
        STEP(json_number(&o, floor_div(microseconds, 1000)));
        STEP(JSON_ADD_LITERAL(&o, ",\"duration_us\":"));
        STEP(json_number(&o, microseconds));
        STEP(JSON_ADD_LITERAL(&o, "}"));
        STEP(json_add(&o, tail.buf, (size_t)tail.len));
#undef STEP
        PyObject *body = PyBytes_FromStringAndSize(o.data, (Py_ssize_t)o.length);
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
    PyMem_RawFree(o.data);
    Py_XDECREF(drafts);
    Py_XDECREF(ids);
    Py_XDECREF(last_type);
    Py_XDECREF(last_agent);
    Py_XDECREF(head);
    Py_XDECREF(last_host);
    Py_XDECREF(last_server);
    Py_XDECREF(last_scheme);
    Py_XDECREF(where);
    Py_XDECREF(stamp);
    PyBuffer_Release(&tail);
    if (declined)
        Py_RETURN_NONE;
    return result;
}

#endif
