/* A small `PUT /events` read from the bytes of one read, for logspace/leanrequest.py: exactly
 * what httptools and uvicorn's callbacks would gather (URL, headers with names in lower case,
 * body), with the headers also by name as str (the first of each, as HQ looks them up), or
 * None for anything it is not sure to read alike. What it takes:
 *
 *   "PUT /events HTTP/1.1\r\n" (or /api/events), then one or more header lines
 *   NAME ":" [" "] VALUE "\r\n", then "\r\n", then exactly Content-Length bytes of body;
 *   NAME: token characters (RFC 9110); VALUE: printable ASCII (0x20-0x7e), not starting or
 *   ending with a space; exactly one Content-Length, all digits, at most `limit`; no
 *   Transfer-Encoding, Expect, Upgrade, Proxy-Connection, nor Connection but "keep-alive".
 *
 * tests/test_leanrequest.py holds it to httptools; `make fuzz` searches for a difference. */
#ifndef LOGSPACE_LEANREQUEST_H
#define LOGSPACE_LEANREQUEST_H

#include <Python.h>
#include <string.h>

static int is_token_char(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_value_char(unsigned char c) { return c >= 0x20 && c <= 0x7e; }

/* Whether name[0:length], already in lower case, is `word`. */
static int name_is(const char *name, Py_ssize_t length, const char *word) {
    return (size_t)length == strlen(word) && memcmp(name, word, (size_t)length) == 0;
}

static int value_is_keep_alive(const unsigned char *value, Py_ssize_t length) {
    static const char word[] = "keep-alive";
    if ((size_t)length != sizeof word - 1)
        return 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char c = value[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)word[i])
            return 0;
    }
    return 1;
}

/* (url, headers, headers by name, body) or None; NULL with an exception only when out of
 * memory. */
static PyObject *read_lean_request(const unsigned char *data, Py_ssize_t size, Py_ssize_t limit) {
    static const char method[] = "PUT ", version[] = " HTTP/1.1\r\n";
    static const char *const paths[] = {"/events", "/api/events"};
    const unsigned char *p = data, *end = data + size;
    if (size < (Py_ssize_t)(sizeof method - 1) || memcmp(p, method, sizeof method - 1) != 0)
        Py_RETURN_NONE;
    p += sizeof method - 1;
    const char *path = NULL;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        size_t path_length = strlen(paths[i]);
        if ((size_t)(end - p) >= path_length + sizeof version - 1 &&
            memcmp(p, paths[i], path_length) == 0 &&
            memcmp(p + path_length, version, sizeof version - 1) == 0) {
            path = paths[i];
            p += path_length + sizeof version - 1;
            break;
        }
    }
    if (path == NULL)
        Py_RETURN_NONE;

    PyObject *headers = PyList_New(0);
    PyObject *by_name = headers ? PyDict_New() : NULL;
    if (by_name == NULL) {
        Py_XDECREF(headers);
        return NULL;
    }
    Py_ssize_t content_length = -1;
    int too_long = 0;
    for (;;) {
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            p += 2;
            break; /* the head's end */
        }
        const unsigned char *name_start = p;
        while (p < end && is_token_char(*p))
            p++;
        Py_ssize_t name_length = p - name_start;
        if (name_length == 0 || p == end || *p != ':')
            goto decline;
        p++;
        if (p < end && *p == ' ')
            p++;
        const unsigned char *value_start = p;
        while (p < end && is_value_char(*p))
            p++;
        Py_ssize_t value_length = p - value_start;
        if (value_length == 0 || value_start[0] == ' ' || value_start[value_length - 1] == ' ' ||
            end - p < 2 || p[0] != '\r' || p[1] != '\n')
            goto decline;
        p += 2;

        PyObject *lower = PyBytes_FromStringAndSize(NULL, name_length);
        if (lower == NULL)
            goto failed;
        char *lowered = PyBytes_AS_STRING(lower);
        for (Py_ssize_t i = 0; i < name_length; i++) {
            unsigned char c = name_start[i];
            lowered[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        const char *name = lowered;
        Py_ssize_t known = name_length;
        if (name_is(name, known, "content-length")) {
            if (content_length >= 0) {
                Py_DECREF(lower);
                goto decline;
            }
            content_length = 0;
            for (Py_ssize_t i = 0; i < value_length; i++) {
                unsigned char c = value_start[i];
                if (c < '0' || c > '9') {
                    Py_DECREF(lower);
                    goto decline;
                }
                /* Past the limit is enough to know: no overflow on a long run of digits. */
                if (content_length <= limit)
                    content_length = content_length * 10 + (c - '0');
                else
                    too_long = 1;
            }
        } else if (name_is(name, known, "transfer-encoding") || name_is(name, known, "expect") ||
                   name_is(name, known, "upgrade") || name_is(name, known, "proxy-connection") ||
                   (name_is(name, known, "connection") &&
                    !value_is_keep_alive(value_start, value_length))) {
            Py_DECREF(lower);
            goto decline;
        }
        PyObject *value = PyBytes_FromStringAndSize((const char *)value_start, value_length);
        PyObject *pair = value ? PyTuple_Pack(2, lower, value) : NULL;
        /* By name as str, the first of each (as HQ looks headers up; all of it is ASCII). */
        PyObject *name_text = pair ? PyUnicode_DecodeASCII(lowered, name_length, NULL) : NULL;
        PyObject *value_text =
            name_text ? PyUnicode_DecodeASCII((const char *)value_start, value_length, NULL)
                      : NULL;
        Py_DECREF(lower);
        Py_XDECREF(value);
        int added = value_text != NULL && PyList_Append(headers, pair) == 0 &&
                    PyDict_SetDefault(by_name, name_text, value_text) != NULL;
        Py_XDECREF(pair);
        Py_XDECREF(name_text);
        Py_XDECREF(value_text);
        if (!added)
            goto failed;
    }
    if (PyList_GET_SIZE(headers) == 0 || content_length < 0 || too_long ||
        content_length > limit || end - p != content_length)
        goto decline;

    PyObject *url = PyBytes_FromString(path);
    PyObject *body = url ? PyBytes_FromStringAndSize((const char *)p, content_length) : NULL;
    PyObject *result = body ? PyTuple_Pack(4, url, headers, by_name, body) : NULL;
    Py_XDECREF(url);
    Py_XDECREF(body);
    Py_DECREF(headers);
    Py_DECREF(by_name);
    return result;
decline:
    Py_DECREF(headers);
    Py_DECREF(by_name);
    Py_RETURN_NONE;
failed:
    Py_DECREF(headers);
    Py_DECREF(by_name);
    return NULL;
}

PyDoc_STRVAR(lean_request_doc,
"lean_request(data, limit)\n"
"--\n\n"
"(url, headers, headers by name, body) of the one whole small PUT /events that `data` is, as\n"
"httptools and uvicorn would read it (header names in lower case; by name: a dict of str, the\n"
"first of each name); None when it is not that, or not surely.");

static PyObject *lean_request(PyObject *module, PyObject *args) {
    Py_buffer data;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "y*n", &data, &limit))
        return NULL;
    PyObject *result = read_lean_request(data.buf, data.len, limit);
    PyBuffer_Release(&data);
    return result;
}

#endif
