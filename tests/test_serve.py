"""A real `logspace serve` process: JSON logs with request ids and no tokens, and metrics
summed over several workers."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from .processes import hq_environ, start_hq

SEED_REQUEST = (Path(__file__).parent / "data" / "seed-request.json").read_bytes()
TOKENS = "development:first-secret-token,ops:second-secret-token:write"


class Server:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def stop(self) -> str:
        """Stop the server; everything it logged."""
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=60)
        return output


@pytest.fixture
def serve(es_url: str, prefix: str) -> Iterator[Any]:
    started: list[Server] = []

    def start(*args: str, **variables: str) -> Server:
        env = hq_environ(
            LOGSPACE_ES_URL=es_url,
            LOGSPACE_SPACE_TOKENS=TOKENS,
            LOGSPACE_INDEX_PREFIX=prefix,
            **variables,
        )
        url, process = start_hq(env, *args, ready_path="/health/ready")
        server = Server(process, url)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def put(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.put(f"{url}/events", content=body, headers=headers, timeout=30)


def test_json_logs_carry_the_request_id_and_never_a_token(serve: Any) -> None:
    server = serve(LOGSPACE_LOG_FORMAT="json")
    stored = put(server.url, SEED_REQUEST, {"logspace.space-token": "first-secret-token"})
    bearer = put(server.url, b"[]", {"authorization": "Bearer second-secret-token"})
    unknown = put(server.url, b"[]", {"logspace.space-token": "guessed-secret-token"})
    given = httpx.get(f"{server.url}/health/live", headers={"x-request-id": "from-the-proxy"})
    assert given.headers["x-request-id"] == "from-the-proxy"

    output = server.stop()

    lines = [orjson.loads(line) for line in output.splitlines()]
    access = {line["request_id"]: line for line in lines if line["logger"] == "logspace.access"}
    assert access[stored.headers["x-request-id"]] | {"duration_ms": 0} == {
        "time": access[stored.headers["x-request-id"]]["time"],
        "level": "info",
        "logger": "logspace.access",
        "message": "PUT /events 202",
        "request_id": stored.headers["x-request-id"],
        "method": "PUT",
        "path": "/events",
        "status": 202,
        "duration_ms": 0,
        "space": "development",
    }
    assert access[bearer.headers["x-request-id"]]["space"] == "ops"
    assert access[unknown.headers["x-request-id"]]["error"] == "INVALID_SPACE_TOKEN"
    assert "space" not in access[unknown.headers["x-request-id"]]
    assert access["from-the-proxy"]["path"] == "/health/live"
    assert any(line["message"] == "Application shutdown complete." for line in lines)
    for secret in ("first-secret-token", "second-secret-token", "guessed-secret-token"):
        assert secret not in output


def test_text_logs_name_the_request_id(serve: Any) -> None:
    server = serve()
    response = httpx.get(f"{server.url}/health/live")

    output = server.stop()

    request_id = response.headers["x-request-id"]
    assert "INFO logspace.access: GET /health/live 200 method=GET" in output
    assert f"request_id={request_id}" in output


def _access_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("INFO logspace.access:")]


def test_access_lines_of_errors_only(serve: Any) -> None:
    """`LOGSPACE_ACCESS_LOG=errors`: lines for answers of 400 and above, from every worker and
    both ways a request is answered (HQ's lean `PUT /events`, the routed app)."""
    server = serve("--workers", "2", LOGSPACE_ACCESS_LOG="errors")
    token = {"logspace.space-token": "first-secret-token"}
    stored = [put(server.url, SEED_REQUEST, token).status_code for _ in range(10)]
    refused = put(server.url, b"[]", {"logspace.space-token": "guessed-secret-token"})
    invalid = put(server.url, b"[{}]", token)
    live = [httpx.get(f"{server.url}/health/live").status_code for _ in range(10)]
    missing = httpx.get(f"{server.url}/nothing")

    output = server.stop()

    assert (stored, live) == ([202] * 10, [200] * 10)
    assert (refused.status_code, invalid.status_code, missing.status_code) == (403, 400, 404)
    lines = _access_lines(output)
    assert sorted(line.split(" method=")[0] for line in lines) == [
        "INFO logspace.access: GET /nothing 404",
        "INFO logspace.access: PUT /events 400",
        "INFO logspace.access: PUT /events 403",
    ]
    assert any(line.endswith(f"request_id={refused.headers['x-request-id']}") for line in lines)


def test_no_access_lines_but_every_request_counted(serve: Any) -> None:
    server = serve(LOGSPACE_ACCESS_LOG="off")
    stored = put(server.url, SEED_REQUEST, {"logspace.space-token": "first-secret-token"})
    refused = put(server.url, b"[]", {"logspace.space-token": "guessed-secret-token"})
    metrics = httpx.get(f"{server.url}/metrics").text

    output = server.stop()

    assert (stored.status_code, refused.status_code) == (202, 403)
    assert _access_lines(output) == []
    assert "Application startup complete." in output  # the other lines are still written
    assert 'logspace_requests_total{outcome="accepted",space="development"} 1.0' in metrics
    assert 'logspace_requests_total{outcome="invalid_space_token",space=""} 1.0' in metrics


# A line feed, a carriage return, an ANSI escape, NEL and LINE SEPARATOR (lines to splitlines()).
FORGING_PATH = "/nothing%0AERROR%20logspace.auth:%20forged%0D%1B[2J%C2%85%E2%80%A8"


def test_text_logs_cannot_be_forged_through_the_path(serve: Any) -> None:
    """The URL-decoded path is logged with its control characters escaped: one request, one
    line."""
    server = serve()
    response = httpx.get(f"{server.url}{FORGING_PATH}")

    output = server.stop()

    assert response.status_code == 404
    assert not any(line.startswith("ERROR logspace.auth") for line in output.splitlines())
    (access,) = [line for line in output.splitlines() if "GET /nothing" in line]
    assert access.startswith(
        "INFO logspace.access: GET /nothing\\x0aERROR logspace.auth: forged\\x0d\\x1b[2J"
        "\\x85\\u2028 404 "
    )
    assert 'path="/nothing\\x0aERROR logspace.auth: forged\\x0d\\x1b[2J\\x85\\u2028"' in access
    assert not any(c in output for c in "\r\x1b\x85\u2028")


def test_json_logs_cannot_be_forged_through_the_path(serve: Any) -> None:
    server = serve(LOGSPACE_LOG_FORMAT="json")
    httpx.get(f"{server.url}{FORGING_PATH}")

    output = server.stop()

    lines = [orjson.loads(line) for line in output.splitlines()]
    (access,) = [line for line in lines if line.get("path", "").startswith("/nothing")]
    path = "/nothing\nERROR logspace.auth: forged\r\x1b[2J\x85\u2028"
    assert access["message"] == f"GET {path} 404"
    assert access["path"] == path
    assert not any(c in output for c in "\r\x1b\x85\u2028")


def test_metrics_are_summed_over_all_workers(serve: Any) -> None:
    """Each scrape reaches one worker; it still reports what every worker counted."""
    server = serve("--workers", "2")
    headers = {"logspace.space-token": "first-secret-token"}
    for _ in range(20):
        assert put(server.url, b"[]", headers).status_code == 202

    scrapes = [httpx.get(f"{server.url}/metrics", timeout=10).text for _ in range(6)]
    server.stop()

    for text in scrapes:
        assert 'logspace_requests_total{outcome="accepted",space="development"} 20.0' in text
