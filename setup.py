"""The one C extension, `logspace._transcode` (the ingest fast path); everything else is in
pyproject.toml. Without a C compiler the build goes on and HQ takes the msgspec path."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "logspace._transcode",
            ["logspace/_transcode.c"],
            depends=["logspace/_fieldset.h", "logspace/_jsontokens.h"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
