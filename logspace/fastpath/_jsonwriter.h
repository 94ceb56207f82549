/* What the agent's C JSON writers share (`asgi_json` in `_requestjson.h`, `log_json` in
 * `_logjson.h`): a growing output, strings escaped exactly as orjson escapes them, numbers,
 * and the convention that a writer declines (returns None) what it does not take as is, for
 * the Python path to do.
 */
#ifndef LOGSPACE_JSONWRITER_H
#define LOGSPACE_JSONWRITER_H

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
        PyErr_SetString(PyExc_TypeError, "a callable of the JSON writer must return bytes");
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

/* What a writer keeps over one group of drafts: copies of the caller's lists (the callables
 * run Python code, which must not free a draft or an id out from under the borrowed references
 * taken from them by changing the caller's lists), the output of the draft being written, and
 * the head and timestamp made for the last draft with the values they were made of. */
typedef struct {
    PyObject *drafts, *ids;
    Py_ssize_t count;
    JsonOut out;
    PyObject *last_type, *last_agent, *head;
    /* The timestamp of millisecond `stamped_ms` (`stamp_len` bytes, 0 before the first). Where
     * `stamp_of` wrote the first millisecond of `stamp_second` as "....000Z" (patchable), the
     * other milliseconds of that second are that text with their digits put in. */
    char stamp[64];
    size_t stamp_len;
    long long stamped_ms, stamp_second;
    int stamp_known, stamp_patchable;
} JsonGroup;

/* Takes the group's lists (as many ids as drafts): the list of results to fill in, each item
 * NULL yet; NULL with an exception. `json_group_close` in either case. */
static PyObject *json_group_open(JsonGroup *g, PyObject *drafts, PyObject *ids) {
    g->drafts = PyList_GetSlice(drafts, 0, PY_SSIZE_T_MAX);
    g->ids = PyList_GetSlice(ids, 0, PY_SSIZE_T_MAX);
    if (g->drafts == NULL || g->ids == NULL)
        return NULL;
    g->count = PyList_GET_SIZE(g->drafts);
    if (PyList_GET_SIZE(g->ids) != g->count) {
        PyErr_SetString(PyExc_ValueError, "as many ids as drafts");
        return NULL;
    }
    return PyList_New(g->count);
}

static void json_group_close(JsonGroup *g) {
    PyMem_RawFree(g->out.data);
    Py_XDECREF(g->drafts);
    Py_XDECREF(g->ids);
    Py_XDECREF(g->last_type);
    Py_XDECREF(g->last_agent);
    Py_XDECREF(g->head);
}

/* The head of an event (`head_of(type, agent)`: its type, system and agent id), made again only
 * when the draft's type or agent differs from the last draft's. 0, or -1 with an exception. */
static int json_group_head(JsonGroup *g, PyObject *head_of, PyObject *event_type,
                           PyObject *agent) {
    if (g->head != NULL && same(event_type, g->last_type) && same(agent, g->last_agent))
        return 0;
    Py_XSETREF(g->head,
               called_bytes(PyObject_CallFunctionObjArgs(head_of, event_type, agent, NULL)));
    if (g->head == NULL)
        return -1;
    Py_XSETREF(g->last_type, Py_NewRef(event_type));
    Py_XSETREF(g->last_agent, Py_NewRef(agent));
    return 0;
}

/* `stamp_of(milliseconds)` into the group's stamp: 0, 1 if it is too long to keep (the writer
 * declines), or -1 with an exception. */
static int json_group_call_stamp(JsonGroup *g, PyObject *stamp_of, long long milliseconds) {
    PyObject *ms = PyLong_FromLongLong(milliseconds);
    if (ms == NULL)
        return -1;
    PyObject *stamp = called_bytes(PyObject_CallOneArg(stamp_of, ms));
    Py_DECREF(ms);
    if (stamp == NULL)
        return -1;
    size_t length = (size_t)PyBytes_GET_SIZE(stamp);
    if (length > sizeof(g->stamp)) {
        Py_DECREF(stamp);
        return 1;
    }
    memcpy(g->stamp, PyBytes_AS_STRING(stamp), length);
    Py_DECREF(stamp);
    g->stamp_len = length;
    g->stamped_ms = milliseconds;
    return 0;
}

/* The timestamp of a millisecond (`stamp_of(milliseconds)`), made again only when the draft's
 * millisecond differs from the last one's, and in Python only once a second: a busy agent's
 * drafts each have a millisecond of their own. 0, 1 to decline, or -1 with an exception. */
static int json_group_stamp(JsonGroup *g, PyObject *stamp_of, long long milliseconds) {
    if (g->stamp_len != 0 && milliseconds == g->stamped_ms)
        return 0;
    long long second = floor_div(milliseconds, 1000);
    if (!g->stamp_known || second != g->stamp_second) {
        int status = json_group_call_stamp(g, stamp_of, second * 1000);
        if (status != 0)
            return status;
        size_t n = g->stamp_len;
        g->stamp_known = 1;
        g->stamp_second = second;
        g->stamp_patchable = n >= 5 && memcmp(g->stamp + n - 5, ".000Z", 5) == 0;
        if (milliseconds == second * 1000)
            return 0;
    }
    if (!g->stamp_patchable)
        return json_group_call_stamp(g, stamp_of, milliseconds);
    long long rest = milliseconds - second * 1000;
    char *digits = g->stamp + g->stamp_len - 4;
    digits[0] = (char)('0' + rest / 100);
    digits[1] = (char)('0' + rest / 10 % 10);
    digits[2] = (char)('0' + rest % 10);
    g->stamped_ms = milliseconds;
    return 0;
}

/* One step of writing a draft, in a writer with the labels `failed` (an exception is set) and
 * `decline` (the Python path takes the group) and an int `status_`. */
#define JSON_STEP(call)                                                                        \
    do {                                                                                       \
        status_ = (call);                                                                      \
        if (status_ < 0)                                                                       \
            goto failed;                                                                       \
        if (status_ == DECLINE)                                                                \
            goto decline;                                                                      \
    } while (0)

#endif
