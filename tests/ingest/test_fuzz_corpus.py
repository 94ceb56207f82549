"""Every body of the fuzz corpora (fuzz/corpus: the seeds; fuzz/regressions: every input that
ever failed) gets the same result from the fast paths as from the thorough decoder, and so does
every seed cut short anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from .differential import both, check

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
SEEDS = sorted((FUZZ / "corpus").iterdir())
REGRESSIONS = sorted((FUZZ / "regressions").iterdir())


def test_both_corpora_have_bodies() -> None:
    """A moved directory must not leave the tests below with nothing to replay."""
    assert len(SEEDS) >= 10
    assert REGRESSIONS


@pytest.mark.parametrize("path", SEEDS, ids=[path.name for path in SEEDS])
def test_each_seed_gets_the_same_result_either_way(path: Path) -> None:
    check(path.read_bytes())


@pytest.mark.parametrize("path", REGRESSIONS, ids=[path.name for path in REGRESSIONS])
def test_each_input_that_ever_failed_gets_the_same_result_either_way(path: Path) -> None:
    check(path.read_bytes())


@pytest.mark.parametrize("path", SEEDS, ids=[path.name for path in SEEDS])
def test_each_seed_cut_anywhere_gets_the_same_result_either_way(path: Path) -> None:
    """A connection may drop anywhere, and a reader's end is where it overruns (which the
    sanitizer step of `make test` would see)."""
    body = path.read_bytes()

    for end in range(len(body)):
        fast, thorough = both(body[:end])
        assert fast == thorough, body[:end]
