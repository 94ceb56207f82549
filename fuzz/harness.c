/* The libFuzzer target of the C fast paths on the network path (logspace/fastpath/).
 *
 * libFuzzer needs a C entry point, and the extension needs a Python interpreter around it, so
 * this embeds one. Each input goes to a differential check, named by FUZZ_CHECK as
 * `module:function`:
 *   tests.ingest.differential:check (the default): the input is a request body for the ingest
 *     fast path (_transcode.c), which must accept nothing but what the thorough decoder gives;
 *   tests.requestdifferential:check: the input is what one read of a connection brings, for
 *     `lean_request` (_leanrequest.h), which must read nothing but what httptools reads.
 * The C code must not crash, nor read outside its input (AddressSanitizer), nor hit undefined
 * behaviour (UndefinedBehaviorSanitizer). Any exception in the check is a finding. Built and
 * run by scripts/fuzz, which also builds the extension with coverage and both sanitizers; see
 * docs/development.md.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static PyObject *check;

static void fail_on(PyStatus status) {
    if (PyStatus_Exception(status))
        Py_ExitStatusException(status);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    PyPreConfig preconfig;
    PyPreConfig_InitPythonConfig(&preconfig);
    /* pymalloc's pools would hide small blocks' bounds from AddressSanitizer. */
    preconfig.allocator = PYMEM_ALLOCATOR_MALLOC;
    fail_on(Py_PreInitialize(&preconfig));

    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    /* libFuzzer owns SIGINT and the other signals it reports on. */
    config.install_signal_handlers = 0;
    /* The project's virtualenv (its pyvenv.cfg) gives the interpreter its packages. */
    const char *python = getenv("FUZZ_PYTHON");
    if (python != NULL)
        fail_on(PyConfig_SetBytesString(&config, &config.program_name, python));
    PyStatus status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    fail_on(status);

    /* Imported here, before fuzzing starts, so libFuzzer sees the extension's counters. */
    const char *target = getenv("FUZZ_CHECK");
    if (target == NULL || *target == '\0')
        target = "tests.ingest.differential:check";
    const char *colon = strchr(target, ':');
    if (colon == NULL) {
        fprintf(stderr, "fuzz/harness.c: FUZZ_CHECK must be module:function, not %s\n", target);
        exit(2);
    }
    PyObject *name = PyUnicode_FromStringAndSize(target, colon - target);
    PyObject *module = name ? PyImport_Import(name) : NULL;
    Py_XDECREF(name);
    check = module ? PyObject_GetAttrString(module, colon + 1) : NULL;
    Py_XDECREF(module);
    if (check == NULL) {
        PyErr_Print();
        fprintf(stderr, "fuzz/harness.c: no %s (PYTHONPATH?)\n", target);
        exit(2);
    }
    return 0;
}

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

/* A digit changed to another: numbers, instants and their limits are all written in decimal,
 * where libFuzzer's byte-level mutations seldom make the one digit that matters. */
static size_t change_digit(uint8_t *data, size_t size, unsigned *seed) {
    size_t digits = 0;
    for (size_t i = 0; i < size; i++)
        digits += data[i] >= '0' && data[i] <= '9';
    if (digits == 0)
        return 0;
    size_t which = (size_t)rand_r(seed) % digits;
    for (size_t i = 0;; i++)
        if (data[i] >= '0' && data[i] <= '9' && which-- == 0) {
            data[i] = (uint8_t)('0' + rand_r(seed) % 10);
            return size;
        }
}

/* libFuzzer's own mutations, and now and then two of ours: a changed digit, or the body cut
 * short, as a dropped connection delivers it (a cut keeps all that leads the reader deep into
 * the batch, which random erasures rarely do, and the end is where a reader overruns). */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
    unsigned choice = (unsigned)rand_r(&seed) % 8;
    if (size > 1 && choice == 0)
        return (size_t)rand_r(&seed) % size;
    if (size > 0 && choice == 1) {
        size_t changed = change_digit(data, size, &seed);
        if (changed != 0)
            return changed;
    }
    return LLVMFuzzerMutate(data, size, max_size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    PyObject *body = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)size);
    PyObject *result = body ? PyObject_CallOneArg(check, body) : NULL;
    Py_XDECREF(body);
    if (result == NULL) {
        PyErr_Print();
        abort(); /* libFuzzer keeps the input as crash-<sha1> */
    }
    Py_DECREF(result);
    return 0;
}
