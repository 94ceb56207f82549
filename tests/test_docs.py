"""Docs stay honest: every setting and every error type is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from logspace import errors
from logspace.settings import SETTINGS

DOCS = Path(__file__).resolve().parent.parent / "docs"
ERROR_TYPES = sorted(
    cls.type
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.LogspaceError)
)


@pytest.mark.parametrize("name", [setting.env for setting in SETTINGS])
def test_every_setting_is_in_the_configuration_docs(name: str) -> None:
    assert f"`{name}`" in (DOCS / "configuration.md").read_text()


@pytest.mark.parametrize("type_", ERROR_TYPES)
def test_every_error_type_is_in_the_api_docs(type_: str) -> None:
    assert f"`{type_}`" in (DOCS / "api.md").read_text()
