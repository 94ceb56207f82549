"""TLS towards Elasticsearch (and Kibana): one `ssl.SSLContext` from HQ's settings.

`LOGSPACE_ES_CA_CERTS` names the CA that signed Elasticsearch's certificate (then only that CA
is trusted), `LOGSPACE_ES_CLIENT_CERT` and `LOGSPACE_ES_CLIENT_KEY` a certificate HQ presents,
and `LOGSPACE_ES_VERIFY_CERTS=false` turns checking off, for local trials only. With none of
them set, the client library's own defaults apply.

The host name is checked against the certificate for IP addresses too (the client library
skips that for IP addresses when it builds the context itself).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from logspace.settings import Settings, SettingsError

__all__ = ["client_options", "context", "httpx_verify"]

log = logging.getLogger(__name__)

_UNVERIFIED_WARNING = (
    "LOGSPACE_ES_VERIFY_CERTS is false: HQ does not check the TLS certificate of %s, so anyone "
    "on the network path can read and change what HQ sends and receives, passwords and events "
    "included. Use it only for local trials; set LOGSPACE_ES_CA_CERTS instead."
)


def context(settings: Settings) -> ssl.SSLContext | None:
    """The SSL context the settings ask for; None when they ask for nothing special.

    Raises `SettingsError`, naming the variable, for a file that cannot be read or used."""
    if not (settings.es_ca_certs or settings.es_client_cert or not settings.es_verify_certs):
        return None
    try:
        ctx = ssl.create_default_context(cafile=settings.es_ca_certs)
    except OSError as error:
        raise SettingsError(
            f"LOGSPACE_ES_CA_CERTS={settings.es_ca_certs!r} cannot be used as a CA bundle: "
            f"{_reason(error)}"
        ) from None
    if not settings.es_verify_certs:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if settings.es_client_cert:
        try:
            ctx.load_cert_chain(settings.es_client_cert, settings.es_client_key)
        except OSError as error:
            key = settings.es_client_key
            named = f" with LOGSPACE_ES_CLIENT_KEY={key!r}" if key else ""
            raise SettingsError(
                f"LOGSPACE_ES_CLIENT_CERT={settings.es_client_cert!r}{named} cannot be used as a "
                f"client certificate: {_reason(error)}"
            ) from None
    return ctx


def _reason(error: OSError) -> str:
    return error.strerror or str(error)  # ssl.SSLError is an OSError too


def client_options(settings: Settings) -> dict[str, Any]:
    """The TLS options of the Elasticsearch client; warns when certificates go unchecked."""
    ctx = context(settings)
    if ctx is None:
        return {}
    if not settings.es_verify_certs:
        log.warning(_UNVERIFIED_WARNING, "Elasticsearch")
    return {"ssl_context": ctx}


def httpx_verify(settings: Settings, what: str) -> ssl.SSLContext | bool:
    """The `verify` option of an httpx client for `what` (e.g. Kibana), from the same settings."""
    ctx = context(settings)
    if ctx is None:
        return True
    if not settings.es_verify_certs:
        log.warning(_UNVERIFIED_WARNING, what)
    return ctx
