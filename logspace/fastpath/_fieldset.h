/* The distinct property fields of a batch, for _transcode.c: an open-addressing set of
 * (family, name) whose names point into the request body, each with the last event that used
 * it, so a name repeated within one event is caught too. */
#ifndef LOGSPACE_FIELDSET_H
#define LOGSPACE_FIELDSET_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const char *name; /* into the request body, which outlives the call */
    Py_ssize_t length;
    Py_hash_t hash;
    int family;
    Py_ssize_t last_event;
} Field;

typedef struct {
    Field *slots;
    size_t capacity; /* a power of two */
    size_t used;
} FieldSet;

/* CPython's own seeded hash of bytes (SipHash, keyed per process like str's hash), of the
 * whole name: a body whose names were chosen to collide would otherwise cost quadratic time. */
#if PY_VERSION_HEX >= 0x030E0000
#define hash_bytes Py_HashBuffer
#else
#define hash_bytes _Py_HashBytes
#endif

static size_t field_hash(int family, const char *name, Py_ssize_t length) {
    return (size_t)hash_bytes(name, length) ^ ((size_t)family * (size_t)0x9E3779B97F4A7C15ULL);
}

static int fieldset_grow(FieldSet *set) {
    size_t capacity = set->capacity ? set->capacity * 2 : 64;
    Field *slots = PyMem_RawCalloc(capacity, sizeof(Field));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < set->capacity; i++) {
        Field *old = &set->slots[i];
        if (old->name == NULL)
            continue;
        size_t at = (size_t)old->hash & (capacity - 1);
        while (slots[at].name != NULL)
            at = (at + 1) & (capacity - 1);
        slots[at] = *old;
    }
    PyMem_RawFree(set->slots);
    set->slots = slots;
    set->capacity = capacity;
    return 0;
}

/* 1: new to the event; 0: the event already has this property (a repeated key); -1: no memory. */
static int fieldset_use(FieldSet *set, int family, const char *name, Py_ssize_t length,
                        Py_ssize_t event) {
    if ((set->used + 1) * 2 > set->capacity && fieldset_grow(set) < 0)
        return -1;
    size_t hash = field_hash(family, name, length);
    size_t at = hash & (set->capacity - 1);
    for (;;) {
        Field *slot = &set->slots[at];
        if (slot->name == NULL) {
            slot->name = name;
            slot->length = length;
            slot->hash = (Py_hash_t)hash;
            slot->family = family;
            slot->last_event = event;
            set->used++;
            return 1;
        }
        if ((size_t)slot->hash == hash && slot->family == family && slot->length == length &&
            memcmp(slot->name, name, (size_t)length) == 0) {
            if (slot->last_event == event)
                return 0;
            slot->last_event = event;
            return 1;
        }
        at = (at + 1) & (set->capacity - 1);
    }
}

#endif
