"""TLS to Elasticsearch: the CA HQ trusts, its client certificate, the insecure way out; each
against the node with security on, whose HTTP layer asks for (optional) client certificates."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from logspace.elastic import tls
from logspace.settings import Settings, SettingsError
from logspace.testing import make_event

from ..clusters import SecureNode
from ..secure_hq import make_certificate, put_events, serve_hq

pytestmark = pytest.mark.anyio

BASE = {"LOGSPACE_SPACE_TOKENS": "alpha:t"}


# -- the settings --------------------------------------------------------------------------


def test_a_client_key_without_a_certificate_is_refused() -> None:
    with pytest.raises(SettingsError, match="LOGSPACE_ES_CLIENT_KEY is set without"):
        Settings.from_env(BASE | {"LOGSPACE_ES_CLIENT_KEY": "/etc/hq.key"})


def test_certificates_are_checked_unless_told_otherwise() -> None:
    assert Settings.from_env(BASE).es_verify_certs is True
    assert Settings.from_env(BASE | {"LOGSPACE_ES_VERIFY_CERTS": "false"}).es_verify_certs is False
    with pytest.raises(SettingsError, match="LOGSPACE_ES_VERIFY_CERTS='maybe' is not a boolean"):
        Settings.from_env(BASE | {"LOGSPACE_ES_VERIFY_CERTS": "maybe"})


def test_without_tls_settings_the_client_librarys_defaults_apply() -> None:
    assert tls.context(Settings.from_env(BASE)) is None
    assert tls.client_options(Settings.from_env(BASE)) == {}


def test_files_that_cannot_be_used_are_named_with_their_variable(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.crt"
    not_pem.write_text("not a certificate\n")
    cases = {
        "LOGSPACE_ES_CA_CERTS": (str(tmp_path / "missing.crt"), "No such file or directory"),
        "LOGSPACE_ES_CLIENT_CERT": (str(tmp_path / "missing.crt"), "No such file or directory"),
    }
    for variable, (value, reason) in cases.items():
        with pytest.raises(SettingsError) as refused:
            tls.context(Settings.from_env(BASE | {variable: value}))
        assert str(refused.value).startswith(f"{variable}={value!r} cannot be used as a")
        assert reason in str(refused.value)
    with pytest.raises(SettingsError, match=r"LOGSPACE_ES_CA_CERTS='.*ca.crt' cannot be used"):
        tls.context(Settings.from_env(BASE | {"LOGSPACE_ES_CA_CERTS": str(not_pem)}))


def test_the_command_stops_at_start_with_status_2_for_a_missing_ca(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSPACE_")}
    env |= {"LOGSPACE_ES_URL": "https://127.0.0.1:9", "LOGSPACE_ES_CA_CERTS": "/nonexistent/ca.crt"}

    done = subprocess.run(
        [sys.executable, "-m", "logspace", "templates", "install"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert done.returncode == 2
    assert done.stderr == (
        "logspace: LOGSPACE_ES_CA_CERTS='/nonexistent/ca.crt' cannot be used as a CA bundle: "
        "No such file or directory\n"
    )


# -- against the secure node ----------------------------------------------------------------


async def write_one(settings: Settings) -> tuple[Any, Any]:
    """HQ's readiness and its answer to one event, with `settings`."""
    async with serve_hq(settings) as hq:
        ready = await hq.get("/health/ready")
        stored = await hq.put("/events", **put_events([make_event()], "alpha-token"))
    return ready, stored


async def test_hq_stores_through_tls_trusting_the_nodes_ca(secure_settings: Settings) -> None:
    ready, stored = await write_one(secure_settings)

    assert ready.status_code == 200, ready.text
    assert stored.status_code == 202, stored.text


async def test_an_unknown_ca_is_refused_and_hq_says_so(
    secure_settings: Settings, tmp_path: Path
) -> None:
    """A CA that did not sign the node's certificate: HQ reaches nothing, and both readiness
    and the write name the TLS failure and the setting to check."""
    other_ca, _ = make_certificate(tmp_path, "other-ca", ca=None)

    ready, stored = await write_one(replace(secure_settings, es_ca_certs=str(other_ca)))

    assert ready.status_code == 503
    assert "CERTIFICATE_VERIFY_FAILED" in ready.json()["parameters"]["elasticsearch"]
    assert stored.status_code == 503
    reason = stored.json()["parameters"]["reason"]
    assert reason.startswith("TLS with Elasticsearch failed (")
    assert "CERTIFICATE_VERIFY_FAILED" in reason
    assert reason.endswith("; check LOGSPACE_ES_CA_CERTS and LOGSPACE_ES_CLIENT_CERT")


async def test_without_the_ca_the_nodes_private_certificate_is_refused(
    secure_settings: Settings,
) -> None:
    _, stored = await write_one(replace(secure_settings, es_ca_certs=None))

    assert stored.status_code == 503
    assert "CERTIFICATE_VERIFY_FAILED" in stored.json()["parameters"]["reason"]


async def test_unverified_tls_works_and_is_loudly_logged(
    secure_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="logspace.elastic.tls")

    _, stored = await write_one(replace(secure_settings, es_ca_certs=None, es_verify_certs=False))

    assert stored.status_code == 202, stored.text
    (warning,) = {r.getMessage() for r in caplog.records if r.name == "logspace.elastic.tls"}
    assert warning.startswith("LOGSPACE_ES_VERIFY_CERTS is false: HQ does not check the TLS")
    assert "passwords and events included" in warning


async def test_hq_presents_its_client_certificate(
    secure_es: SecureNode, secure_settings: Settings, tmp_path: Path
) -> None:
    """The node checks a client certificate when one is presented: one signed by its CA gets
    HQ in; one signed by another CA is refused in the handshake, which shows HQ sent it."""
    signed = make_certificate(tmp_path, "logspace-hq", ca=(secure_es.ca, secure_es.ca_key))
    other_ca = make_certificate(tmp_path, "other-ca", ca=None)
    stranger = make_certificate(tmp_path, "stranger", ca=other_ca)

    _, accepted = await write_one(
        replace(secure_settings, es_client_cert=str(signed[0]), es_client_key=str(signed[1]))
    )
    _, refused = await write_one(
        replace(secure_settings, es_client_cert=str(stranger[0]), es_client_key=str(stranger[1]))
    )

    assert accepted.status_code == 202, accepted.text
    assert refused.status_code == 503
    reason = refused.json()["parameters"]["reason"]
    assert reason.startswith("TLS with Elasticsearch failed (")
    assert "CERTIFICATE_UNKNOWN" in reason


async def test_a_certificate_file_holding_its_key_needs_no_key_setting(
    secure_es: SecureNode, secure_settings: Settings, tmp_path: Path
) -> None:
    certificate, key = make_certificate(tmp_path, "hq", ca=(secure_es.ca, secure_es.ca_key))
    both = tmp_path / "hq.pem"
    both.write_text(certificate.read_text() + key.read_text())

    _, stored = await write_one(replace(secure_settings, es_client_cert=str(both)))

    assert stored.status_code == 202, stored.text
