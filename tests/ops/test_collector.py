"""A serving HQ tunes its garbage collector once started; an embedded app leaves it alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from logspace.app import create_app_from_environ
from logspace.ops import collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_tuning_freezes_what_exists_and_collects_less_often(restored_collector: None) -> None:
    collector.tune()

    assert gc.get_threshold() == collector.THRESHOLDS
    assert gc.get_freeze_count() > 0


@pytest.mark.anyio
@pytest.mark.parametrize(("tune", "tuned"), [("true", True), ("false", False)])
async def test_the_served_app_tunes_the_collector_once_started_unless_told_not_to(
    restored_collector: None,
    monkeypatch: pytest.MonkeyPatch,
    es_url: str,
    prefix: str,
    tune: str,
    tuned: bool,
) -> None:
    for name, value in {
        "LOGSPACE_ES_URL": es_url,
        "LOGSPACE_SPACE_TOKENS": "development:development",
        "LOGSPACE_INDEX_PREFIX": prefix,
        "LOGSPACE_TUNE_GC": tune,
    }.items():
        monkeypatch.setenv(name, value)
    gc.set_threshold(700, 10, 10)

    app = create_app_from_environ()
    assert gc.get_threshold() == (700, 10, 10)  # not before it starts
    async with app.router.lifespan_context(app):
        assert (gc.get_threshold() == collector.THRESHOLDS) is tuned
        assert (gc.get_freeze_count() > 0) is tuned
