/* The agent's ASGI request events written as JSON in C: `asgi_json`, the fast path of
 * `RequestEvents.encoded` (logspace/agent/requestevent.py) for the ASGI middleware's drafts.
 *
 * It writes per draft exactly the bytes the Python `_encoded` writes (which orjson's encoding
 * of the built event is held to), or returns None for a group it does not take as is (a value
 * of an unexpected type, a text that is not valid UTF-8, a number out of range): the Python
 * path then does the work. What is worked out once per group stays in Python and is passed in
 * as callables, called only when the value changes from one draft to the next: the event's
 * head (type, system, agent id), the timestamp (once a second: see `json_group_stamp`), the
 * domain and port of a host. tests/agent/test_agent_requestevent.py holds the two paths equal.
 *
 * It reads only Python objects the application's middleware made (no bytes from the network
 * are parsed here: the texts are copied with JSON's escapes), in the sender's thread.
 */
#ifndef LOGSPACE_REQUESTJSON_H
#define LOGSPACE_REQUESTJSON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "_jsonwriter.h"

PyDoc_STRVAR(asgi_json_doc,
"asgi_json(drafts, ids, head, stamp, where, tail) -> list[bytes] | None\n"
"\n"
"The JSON of each ASGI request draft with its id, as requestevent._encoded writes it; None\n"
"to decline. head(type, agent_id) -> bytes and where(host, server, scheme) -> (bytes, bytes)\n"
"are called when their arguments change, stamp(milliseconds) -> bytes for the first\n"
"millisecond of each second (the others are its text with their digits in, where it ends\n"
"in .000Z).");

static PyObject *asgi_json(PyObject *module, PyObject *args) {
    PyObject *given_drafts, *given_ids, *head_of, *stamp_of, *where_of;
    Py_buffer tail;
    if (!PyArg_ParseTuple(args, "O!O!OOOy*", &PyList_Type, &given_drafts, &PyList_Type,
                          &given_ids, &head_of, &stamp_of, &where_of, &tail))
        return NULL;
    JsonGroup g = {0};
    JsonOut *o = &g.out;
    /* The last place seen and what was made of it (owned references). */
    PyObject *last_host = NULL, *last_server = NULL, *last_scheme = NULL, *where = NULL;
    int declined = 0;
    PyObject *result = json_group_open(&g, given_drafts, given_ids);
    if (result == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < g.count; i++) {
        PyObject *draft = PyList_GET_ITEM(g.drafts, i);
        if (!PyTuple_CheckExact(draft) || PyTuple_GET_SIZE(draft) != 14)
            goto decline;
        PyObject *event_type = PyTuple_GET_ITEM(draft, 0), *agent = PyTuple_GET_ITEM(draft, 1),
                 *arrived = PyTuple_GET_ITEM(draft, 2), *elapsed = PyTuple_GET_ITEM(draft, 3),
                 *scheme = PyTuple_GET_ITEM(draft, 4), *server = PyTuple_GET_ITEM(draft, 5),
                 *path = PyTuple_GET_ITEM(draft, 6), *query = PyTuple_GET_ITEM(draft, 7),
                 *method = PyTuple_GET_ITEM(draft, 8), *client = PyTuple_GET_ITEM(draft, 9),
                 *host = PyTuple_GET_ITEM(draft, 10), *request_id = PyTuple_GET_ITEM(draft, 11),
                 *status = PyTuple_GET_ITEM(draft, 12), *location = PyTuple_GET_ITEM(draft, 13);
        PyObject *id = PyList_GET_ITEM(g.ids, i);
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

        if (json_group_head(&g, head_of, event_type, agent) < 0)
            goto failed;
        long long milliseconds = floor_div(arrived_ns, 1000000);
        int stamped = json_group_stamp(&g, stamp_of, milliseconds);
        if (stamped < 0)
            goto failed;
        if (stamped > 0)
            goto decline;
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
        o->length = 0;
        int status_ = 0;
        long long microseconds = floor_div(elapsed_ns, 1000);
        PyObject *domain = PyTuple_GET_ITEM(where, 0), *port = PyTuple_GET_ITEM(where, 1);
        JSON_STEP(JSON_ADD_LITERAL(o, "{\"id\":\""));
        JSON_STEP(json_add(o, id_text, (size_t)id_length));
        JSON_STEP(json_add(o, PyBytes_AS_STRING(g.head), (size_t)PyBytes_GET_SIZE(g.head)));
        JSON_STEP(json_add(o, g.stamp, g.stamp_len));
        JSON_STEP(json_member_str(o, "\",\"string-properties\":{\"protocol\":",
                                  sizeof("\",\"string-properties\":{\"protocol\":") - 1, scheme));
        JSON_STEP(json_member_str(o, ",\"path\":", sizeof(",\"path\":") - 1, path));
        JSON_STEP(json_member_str(o, ",\"http_method\":", sizeof(",\"http_method\":") - 1,
                                  method));
        JSON_STEP(json_add(o, PyBytes_AS_STRING(domain), (size_t)PyBytes_GET_SIZE(domain)));
        if (!PyBytes_CheckExact(query))
            goto decline;
        JSON_STEP(json_member_latin1(o, ",\"query_string\":", sizeof(",\"query_string\":") - 1,
                                     query));
        JSON_STEP(json_member_latin1(o, ",\"request_id\":", sizeof(",\"request_id\":") - 1,
                                     request_id));
        if (ip != Py_None && PyUnicode_GET_LENGTH(ip) > 0)
            JSON_STEP(json_member_str(o, ",\"ip_address\":", sizeof(",\"ip_address\":") - 1, ip));
        JSON_STEP(json_member_latin1(o, ",\"location\":", sizeof(",\"location\":") - 1, location));
        JSON_STEP(JSON_ADD_LITERAL(o, "},\"integer-properties\":{\"response_code\":"));
        JSON_STEP(json_number(o, code));
        JSON_STEP(json_add(o, PyBytes_AS_STRING(port), (size_t)PyBytes_GET_SIZE(port)));
        JSON_STEP(JSON_ADD_LITERAL(o, "},\"long-properties\":{\"duration\":"));
        JSON_STEP(json_number(o, floor_div(microseconds, 1000)));
        JSON_STEP(JSON_ADD_LITERAL(o, ",\"duration_us\":"));
        JSON_STEP(json_number(o, microseconds));
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
    Py_XDECREF(last_host);
    Py_XDECREF(last_server);
    Py_XDECREF(last_scheme);
    Py_XDECREF(where);
    json_group_close(&g);
    PyBuffer_Release(&tail);
    if (declined)
        Py_RETURN_NONE;
    return result;
}

#endif
