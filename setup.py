"""What pyproject.toml cannot say: the C extension, `logspace.fastpath._transcode` (the event
rules in C, the fast path), and the two data directories at the top of the repository that
ship inside the package.

Without a C compiler the build goes on and HQ takes the slower path. The index templates and
Kibana's saved objects have one source each, `index_templates/` and `kibana/`; they are mapped
into the package as `logspace.index_templates` and `logspace.saved_objects`, so a wheel, a
plain `pip install .` and an editable install all read them through `importlib.resources`.
"""

from pathlib import Path

from setuptools import Extension, find_packages, setup

DATA_PACKAGES = {
    "logspace.index_templates": ("index_templates", ["*.json"]),
    "logspace.saved_objects": ("kibana", ["*.ndjson"]),
}

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
        )
    ],
)
