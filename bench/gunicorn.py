"""gunicorn's settings for figure (g) (`-c python:bench.gunicorn`): close the agent on exit.

Kept apart from bench/apps.py, which gunicorn's master must not import: the sender it would
create there has no threads in the forked worker.
"""

from __future__ import annotations

from typing import Any


def worker_exit(server: Any, worker: Any) -> None:
    from . import apps  # already imported in the worker, which loaded the app

    apps.close_wsgi_sender()
