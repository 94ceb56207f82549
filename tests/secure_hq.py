"""HQ on the node with security on (`secure_es`, tests/clusters.py): a prefix of the test's own
and everything named after it removed afterwards, HQ's settings there, HQ in process, and
certificates a test makes with the node's CA (or another one).

Fixtures: `secure_prefix`, `secure_settings`. Helpers: `serve_hq`, `make_certificate`.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from logspace.app import create_app
from logspace.settings import Settings
from logspace.spaces.grants import Grant

from .clusters import SecureNode

TOKENS = {
    "alpha-token": Grant("alpha"),
    "beta-token": Grant("beta"),
    "alpha-reader": Grant("alpha", write=False),
}


@pytest.fixture
def secure_prefix(secure_es: SecureNode) -> Iterator[str]:
    """An index prefix of this test's own on the secure node. Its indices, templates, control
    index, and the roles, users and API keys whose names start with it go afterwards."""
    name = f"lstest-{uuid.uuid4().hex[:10]}"
    yield name
    with secure_es.client() as elastic:
        elastic.delete(f"/{name}-*", params={"expand_wildcards": "all"})
        elastic.delete(f"/{name}.control", params={"ignore_unavailable": "true"})
        elastic.delete(f"/_index_template/{name}")
        elastic.delete(f"/_component_template/{name}-*")
        for role in elastic.get("/_security/role").json():
            if role.startswith(name):
                elastic.delete(f"/_security/role/{role}")
        users = elastic.post(
            "/_security/_query/user", json={"query": {"prefix": {"username": name}}, "size": 100}
        ).json()["users"]
        for user in users:
            elastic.delete(f"/_security/user/{user['username']}")
        elastic.request("DELETE", "/_security/api_key", json={"name": f"{name}*"})


@pytest.fixture
def secure_settings(secure_es: SecureNode, secure_prefix: str) -> Settings:
    """HQ on the secure node over HTTPS, trusting its CA, as `elastic` (tests that mean
    another user replace the credentials)."""
    return Settings(
        space_tokens=TOKENS,
        es_url=secure_es.url,
        es_username=secure_es.user,
        es_password=secure_es.password,
        es_ca_certs=str(secure_es.ca),
        index_prefix=secure_prefix,
        control_index=f"{secure_prefix}.control",
        es_retry_seconds=1.0,
    )


def as_user(settings: Settings, user: str, password: str) -> Settings:
    return replace(settings, es_username=user, es_password=password)


@contextlib.asynccontextmanager
async def serve_hq(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """HQ in process with `settings`, started (templates installed as its user) and stopped."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hq") as client:
            yield client


def put_events(events: Any, token: str) -> dict[str, Any]:
    """The keyword arguments of a `PUT /events` with `token`."""
    return {"json": events, "headers": {"logspace.space-token": token}}


def make_certificate(directory: Path, name: str, ca: tuple[Path, Path] | None) -> tuple[Path, Path]:
    """A certificate and key for `name`, signed by the CA `(certificate, key)`, or a new CA of
    their own when `ca` is None (then the certificate is that CA's); made with openssl."""
    key, certificate = directory / f"{name}.key", directory / f"{name}.crt"
    subject = ["-subj", f"/CN={name}", "-days", "1"]
    if ca is None:
        _openssl("req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                 "-out", certificate, *subject)  # fmt: skip
        return certificate, key
    request = directory / f"{name}.csr"
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", request,
             "-subj", f"/CN={name}")  # fmt: skip
    # A serial of our own: -CAcreateserial would write next to the CA's key.
    _openssl("x509", "-req", "-in", request, "-CA", ca[0], "-CAkey", ca[1], "-out", certificate,
             "-set_serial", str(uuid.uuid4().int >> 64), "-days", "1")  # fmt: skip
    return certificate, key


def _openssl(*args: str | Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "the tests make certificates with openssl"
    subprocess.run(
        [openssl, *map(str, args)], check=True, capture_output=True, text=True, timeout=60
    )
