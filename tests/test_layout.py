"""The package reads as the system: wings by concern, data flowing one way, no import circles,
only the Elasticsearch wing talking to Elasticsearch, an agent library free of the server."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "logspace"
# The models both HQ and the agent library use: the event and order formats and their rules
# (the event rules twice: the thorough decoder, and the fast path in C).
SHARED = {"logspace.events", "logspace.decoder", "logspace.errors", "logspace.orders"}
SHARED |= {"logspace.cron", "logspace.problems", "logspace.textvalues", "logspace.fastpath"}
MAX_LINES = 420


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(module: str) -> Iterator[str]:
    """Every module of the package `module` imports, type-only imports included."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            # `from logspace import fastpath` imports the module, not the package's own code.
            names = [name for name in submodules if name in MODULES] or [base]
        else:
            continue
        yield from (name for name in names if name in MODULES and name != module)


GRAPH = {module: set(_imports(module)) for module in MODULES}


def _outside(module: str) -> set[str]:
    """Third-party and standard modules `module` imports."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.partition(".")[0])
    return found - {"logspace"}


def test_no_module_imports_itself_through_others() -> None:
    """No import circle, not even a type-only one."""
    circles = []
    for start in GRAPH:
        stack = [(start, [start])]
        seen = set()
        while stack:
            module, trail = stack.pop()
            for imported in GRAPH[module]:
                if imported == start:
                    circles.append(" -> ".join([*trail, start]))
                elif imported not in seen:
                    seen.add(imported)
                    stack.append((imported, [*trail, imported]))
    assert circles == []


def test_the_agent_library_uses_no_server_code() -> None:
    used = {
        imported
        for module, imports in GRAPH.items()
        if module.startswith("logspace.agent")
        for imported in imports
        if not imported.startswith("logspace.agent")
    }
    assert used <= SHARED


def test_the_shared_models_use_nothing_but_each_other() -> None:
    for module in SHARED:
        assert GRAPH[module] <= SHARED, module


@pytest.mark.parametrize("wing", ["ingest", "read", "control", "ops", "spaces"])
def test_only_the_elastic_wing_talks_to_elasticsearch(wing: str) -> None:
    talking = {
        module
        for module in MODULES
        if module.startswith(f"logspace.{wing}")
        and _outside(module) & {"elasticsearch", "elastic_transport"}
    }
    assert talking == set()


def test_no_module_is_longer_than_a_reader_can_hold() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.c"), *PACKAGE.rglob("*.h")]
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
