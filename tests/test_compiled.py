"""The modules setup.py has mypyc compile (`COMPILED`) are compiled in the build under test:
without a C compiler they would run as Python, correct but slower, and the suite says so."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def compiled_sources() -> list[str]:
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "COMPILED":
            sources: list[str] = ast.literal_eval(node.value)
            return sources
    raise AssertionError("setup.py has no COMPILED list")


def module_name(source: str) -> str:
    return source.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


@pytest.mark.parametrize("source", compiled_sources())
def test_each_module_setup_py_names_is_loaded_compiled(source: str) -> None:
    assert (ROOT / source).is_file()
    module = importlib.import_module(module_name(source))
    assert str(module.__file__).endswith(".so"), module.__file__


def test_the_modules_mypyc_compiles_are_only_what_setup_py_names() -> None:
    """A compiled module no longer listed (a stale build) would shadow its edited source."""
    listed = {module_name(source) for source in compiled_sources()} | {
        "logspace.fastpath._transcode"
    }
    built = {
        module_name(f"{path.relative_to(ROOT).parent}/{path.name.partition('.')[0]}.py")
        for path in (ROOT / "logspace").glob("**/*.so")
    }
    assert built <= listed
