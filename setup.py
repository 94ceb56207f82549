"""What pyproject.toml cannot say: the compiled parts and the two data directories at the top of
the repository that ship inside the package.

- The C extension, `logspace.fastpath._transcode` (the event rules in C, the fast path).
- The modules a `PUT /events` passes through (`COMPILED`), compiled by mypyc from their typed
  Python: the same source, about 15 % less of HQ's CPU per small request, in process
  (bench/optimisations.md).
  Python then loads the compiled module in place of the `.py` beside it, so an edit takes effect
  only after a build (`make` does it when a source changes). `LOGSPACE_MYPYC=0` builds without
  them (for a debugger's or a profiler's view of those modules in Python).

Without a C compiler the build goes on and HQ runs all of it as Python. The index templates and
Kibana's saved objects have one source each, `index_templates/` and `kibana/`; they are mapped
into the package as `logspace.index_templates` and `logspace.saved_objects`, so a wheel, a
plain `pip install .` and an editable install all read them through `importlib.resources`.
"""

import os
import shutil
import sysconfig
from pathlib import Path

from setuptools import Extension, find_packages, setup

DATA_PACKAGES = {
    "logspace.index_templates": ("index_templates", ["*.json"]),
    "logspace.saved_objects": ("kibana", ["*.ndjson"]),
}

# A request's way through HQ, and nothing whose classes tests or operators patch: a compiled
# class takes no new attributes, and calls between compiled modules are bound at build time
# (so not `ops/metrics.py`, whose `Ingest` a test breaks on purpose).
# No class here may extend an `abc` class: mypyc gives it the ABC's own registry (`Bulk` as a
# `Sequence` passed `isinstance(a_list, Bulk)`). Not the protocols (`protocol.py`,
# `guardedprotocol.py`): their classes extend uvicorn's, which the build does not know (below).
COMPILED = [
    "logspace/body.py",
    "logspace/elastic/bulk.py",
    "logspace/elastic/coalescer.py",
    "logspace/elastic/flushpolicy.py",
    "logspace/elastic/writer.py",
    "logspace/fastpath/__init__.py",
    "logspace/ingest/answer.py",
    "logspace/ingest/budget.py",
    "logspace/ingest/decode.py",
    "logspace/ingest/endpoint.py",
    "logspace/ingest/transcoder.py",
    "logspace/leanrequest.py",
    "logspace/ops/accesslog.py",
    "logspace/ops/tally.py",
    "logspace/spaces/grants.py",
    "logspace/spaces/tokens.py",
]


def compiled() -> list[Extension]:
    """mypyc's extensions for `COMPILED`; none without a C compiler or with LOGSPACE_MYPYC=0."""
    if os.environ.get("LOGSPACE_MYPYC", "1") == "0" or not _compiler():
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # built without isolation, where mypy is missing: as without a compiler
        print("mypyc is missing: the modules of COMPILED stay Python")
        return []

    # Other packages' types stay unknown (Any) whether or not the build environment has them:
    # the same compiled code everywhere, with no run-time checks of their values (a check of a
    # type they leave open, such as uvicorn's bytearray bodies, would fail where ours differ).
    # A listed module's class that extends one of theirs is refused (strict mode's
    # disallow_subclassing_any): mypyc would compile it wrongly. Modules not listed are read
    # for their types only. `make check` type-checks everything against the real types.
    return mypycify(
        [
            *("--no-site-packages", "--ignore-missing-imports", "--follow-imports=silent"),
            # What strict mode says of those Any values is for `make check`, not the build.
            *("--no-warn-return-any", "--no-warn-unused-ignores"),
            *COMPILED,
        ],
        opt_level="3",
        # Their shared library is `logspace__mypyc`, a top-level module, named after the package.
        group_name="logspace",
    )


def _compiler() -> bool:
    command = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    return bool(command) and shutil.which(command[0]) is not None


setup(
    packages=[*find_packages(include=["logspace", "logspace.*"]), *DATA_PACKAGES],
    package_dir={name: directory for name, (directory, _) in DATA_PACKAGES.items()},
    package_data={name: patterns for name, (_, patterns) in DATA_PACKAGES.items()},
    ext_modules=[
        Extension(
            "logspace.fastpath._transcode",
            ["logspace/fastpath/_transcode.c"],
            depends=[str(header) for header in sorted(Path("logspace/fastpath").glob("_*.h"))],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        ),
        *compiled(),
    ],
)
