"""Settings: one frozen value, built from an environment mapping and an optional TOML file.

`Settings.from_env(mapping)` never reads `os.environ` itself; the CLI passes it in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from logspace.events import Limits
from logspace.orders import ORIGINAL_COMMIT_SECONDS
from logspace.partitions import Partition
from logspace.settings.table import SETTINGS, SettingsError
from logspace.spaces.grants import Grant
from logspace.textvalues import read_toml

__all__ = ["CONFIG_FILE_VARIABLE", "Settings"]

CONFIG_FILE_VARIABLE = "LOGSPACE_CONFIG"


@dataclass(frozen=True)
class Settings:
    space_tokens: dict[str, Grant] = field(repr=False)
    es_url: str = "http://127.0.0.1:9200"
    es_username: str | None = None
    es_password: str | None = field(default=None, repr=False)
    es_api_key: str | None = field(default=None, repr=False)
    es_ca_certs: str | None = None
    es_client_cert: str | None = None
    es_client_key: str | None = None
    es_verify_certs: bool = True
    es_timeout: float = 30.0
    es_retry_seconds: float = 5.0
    bulk_max_events: int = 2000
    bulk_max_bytes: int = 8 * 1024 * 1024
    bulk_max_wait_seconds: float = 0.005
    bulk_concurrency: int = 2
    index_prefix: str = "logspace-events"
    index_partition: Partition = "month"
    index_replicas: str = "auto"
    shards_warn_percent: int = 80
    install_templates: bool = True
    host: str = "127.0.0.1"
    port: int = 4567
    keep_alive_seconds: int = 75
    request_read_seconds: float = 30.0
    tune_gc: bool = True
    max_body_bytes: int = 10 * 1024 * 1024
    max_events: int = 10_000
    max_properties: int = 200
    max_property_name_length: int = 255
    max_string_length: int = 10_485_760
    oldest_timestamp: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    max_future_seconds: int = 86_400
    max_fields_per_space: int = 1000
    max_inflight_bytes: int = 64 * 1024 * 1024
    linger_max_bytes: int = 64 * 1024 * 1024
    linger_seconds: float = 30.0
    space_tokens_file: str | None = None
    tokens_reload_seconds: float = 5.0
    retention_keep_days: int | None = None
    retention_interval: float = 3600.0
    log_format: str = "text"
    access_log: str = "all"
    metrics_token: str | None = field(default=None, repr=False)
    control_index: str = "logspace-control"
    orders_dir: str | None = None
    orders_reload_seconds: float = 5.0
    orders_default_commit_seconds: int = ORIGINAL_COMMIT_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Settings from `LOGSPACE_*` variables, over a TOML file named by `LOGSPACE_CONFIG`."""
        values: dict[str, str] = {}
        config_file = environ.get(CONFIG_FILE_VARIABLE)
        if config_file:
            # Keys are the setting names without `LOGSPACE_`, e.g. `es_url`.
            known = {x.env.removeprefix("LOGSPACE_").lower(): x.env for x in SETTINGS}
            try:
                values.update(read_toml(config_file, CONFIG_FILE_VARIABLE, known))
            except ValueError as error:
                raise SettingsError(str(error)) from None
        values.update({k: v for k, v in environ.items() if k.startswith("LOGSPACE_")})
        kwargs: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = values.get(setting.env, setting.default)
            if raw is None:
                raise SettingsError(f"{setting.env} is required: {setting.doc}")
            try:
                kwargs[setting.field] = setting.parse(setting.env, raw)
            except ValueError as error:
                raise SettingsError(str(error)) from None
        settings = cls(**kwargs)
        if settings.max_inflight_bytes < settings.max_body_bytes:
            raise SettingsError(
                f"LOGSPACE_MAX_INFLIGHT_BYTES={settings.max_inflight_bytes} must be at least "
                f"LOGSPACE_MAX_BODY_BYTES={settings.max_body_bytes}, or the largest bodies "
                "could only be refused"
            )
        if settings.es_client_key and not settings.es_client_cert:
            raise SettingsError(
                "LOGSPACE_ES_CLIENT_KEY is set without LOGSPACE_ES_CLIENT_CERT: a key alone "
                "is no client certificate"
            )
        if settings.control_index.startswith(f"{settings.index_prefix}-"):
            # Retention, the read API and the event template all take `<prefix>-*` as events.
            raise SettingsError(
                f"LOGSPACE_CONTROL_INDEX={settings.control_index!r} must not start with "
                f"'{settings.index_prefix}-': that names event indices (LOGSPACE_INDEX_PREFIX)"
            )
        return settings

    @property
    def es_urls(self) -> list[str]:
        """The nodes HQ talks to (`es_url` names one, or several separated by commas)."""
        return [url.strip().rstrip("/") for url in self.es_url.split(",") if url.strip()]

    @property
    def limits(self) -> Limits:
        return Limits(
            max_events=self.max_events,
            max_properties=self.max_properties,
            max_fields=self.max_fields_per_space,
            max_property_name_length=self.max_property_name_length,
            max_string_length=self.max_string_length,
            oldest_timestamp=self.oldest_timestamp,
            max_future=timedelta(seconds=self.max_future_seconds),
        )
