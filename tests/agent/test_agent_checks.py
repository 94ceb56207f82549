"""The agents' check of many events in one call of C (`fastpath.plain_each`, what `send` and
the drafts' groups use): for a group, the C rules read the events without holding the GIL, so
the application's threads run meanwhile; every verdict is still that of the event alone, also
for numbers only Python can judge (an exponent), which are read again with the GIL."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logspace import fastpath
from tests.ingest.differential import NOW
from tests.ingest.transcoding import WIDE, common_events, java_body, java_events

# Without the extension there is no C check (tests/ingest/test_transcoder.py fails then).
pytestmark = pytest.mark.skipif(not fastpath.AVAILABLE, reason="the C extension is not built")

# From this many events on, the C check releases the GIL (VERDICTS_WITHOUT_GIL).
GROUP = 16

numbers = st.sampled_from(
    [b"1e-5", b"1.5e+300", b"2E3", b"1e999", b"-0.0", b"12.5", b"1" * 40 + b".5", b"7"]
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(common_events | java_events, min_size=1, max_size=4), st.lists(numbers))
def test_a_group_gets_the_verdicts_its_events_get_alone(
    batch: list[dict[str, Any]], literals: list[bytes]
) -> None:
    events = [java_body([event])[1:-1] for event in batch]
    template = orjson.dumps(
        {
            "id": "x",
            "type": "t/x",
            "system": "s",
            "agent-id": "a",
            "timestamp": "2026-11-30T10:00:00.000Z",
            "double-properties": {"v": 0},
        }
    )
    events += [template.replace(b'"v":0', b'"v":' + literal) for literal in literals]
    events += [b"", b"{", events[0] + b"," + events[0]]
    group = (events * GROUP)[: max(GROUP, len(events))]
    newest = NOW + WIDE.max_future

    alone = [fastpath.plain_each([event], WIDE, newest) for event in group]

    assert [[verdict] for verdict in fastpath.plain_each(group, WIDE, newest) or []] == alone
