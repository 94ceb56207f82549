"""Figure (g4), one arm in a process of its own: log records per second through a handler.

    python -m bench.lograte stream|agent RECORDS WORKDIR

`stream` logs through a `logging.FileHandler` (a StreamHandler to a file) with a usual format;
`agent` through `LogHandler` to a `Sender` configured as in bench/apps.py (BENCH_AGENT_*), which
is closed afterwards, so everything is delivered before the process ends. Prints one JSON line
with the seconds the logging calls took.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import orjson

from logspace.agent import LogHandler

from . import apps


def main() -> None:
    handler_name, records, work = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    logger = logging.getLogger("bench.shop.orders")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    sender = None
    handler: logging.Handler
    if handler_name == "stream":
        handler = logging.FileHandler(work / f"app-{time.monotonic_ns()}.log")
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s %(funcName)s: %(message)s")
        )
    else:
        sender = apps.sender()
        if sender is None:
            raise SystemExit("the agent arm needs BENCH_AGENT_HQ_URL")
        handler = LogHandler(sender)
    logger.addHandler(handler)
    for n in range(records // 10):  # warm-up, not counted
        logger.info("order %d shipped to %s", n, "Vienna")
    started = time.perf_counter()
    for n in range(records):
        logger.info("order %d shipped to %s", n, "Vienna")
    seconds = time.perf_counter() - started
    handler.close()
    if sender is not None:
        apps.close(sender)
    print(orjson.dumps({"seconds": seconds}).decode())


if __name__ == "__main__":
    main()
