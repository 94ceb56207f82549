"""Every setting HQ reads: its variable, its field of `Settings`, its parser, its default and
its documentation, declared once here (`docs/configuration.md`'s test reads this table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logspace.orders import ORIGINAL_COMMIT_SECONDS
from logspace.settings.parsers import SettingsError
from logspace.settings.parsers import access_log as _access_log
from logspace.settings.parsers import commit_seconds as _commit_seconds
from logspace.settings.parsers import field_budget as _field_budget
from logspace.settings.parsers import index_prefix as _index_prefix
from logspace.settings.parsers import instant as _instant
from logspace.settings.parsers import log_format as _log_format
from logspace.settings.parsers import metrics_token as _metrics_token
from logspace.settings.parsers import partition as _partition
from logspace.settings.parsers import percent as _percent
from logspace.settings.parsers import port as _port
from logspace.settings.parsers import replicas as _replicas
from logspace.settings.parsers import retention_days as _retention_days
from logspace.spaces.grants import parse_space_tokens
from logspace.textvalues import boolean as _boolean
from logspace.textvalues import non_negative_float as _non_negative_float
from logspace.textvalues import optional_text as _optional_text
from logspace.textvalues import positive_float as _positive_float
from logspace.textvalues import positive_int as _positive_int
from logspace.textvalues import text as _text
from logspace.textvalues import urls as _urls

__all__ = ["SETTINGS", "Setting", "SettingsError"]


@dataclass(frozen=True)
class Setting:
    env: str
    field: str
    parse: Callable[[str, str], Any]
    default: str | None
    doc: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "LOGSPACE_ES_URL",
        "es_url",
        _urls,
        "http://127.0.0.1:9200",
        "Base URL of Elasticsearch, or the comma-separated URLs of several nodes of one cluster.",
    ),
    Setting(
        "LOGSPACE_ES_USERNAME",
        "es_username",
        _optional_text,
        "",
        "User name for Elasticsearch basic authentication.",
    ),
    Setting(
        "LOGSPACE_ES_PASSWORD",
        "es_password",
        _optional_text,
        "",
        "Password for Elasticsearch basic authentication.",
    ),
    Setting(
        "LOGSPACE_ES_API_KEY",
        "es_api_key",
        _optional_text,
        "",
        "Elasticsearch API key (the base64 `id:key` form); used instead of a user.",
    ),
    Setting(
        "LOGSPACE_ES_CA_CERTS",
        "es_ca_certs",
        _optional_text,
        "",
        "Path to a CA bundle for an Elasticsearch served over HTTPS.",
    ),
    Setting(
        "LOGSPACE_ES_CLIENT_CERT",
        "es_client_cert",
        _optional_text,
        "",
        "Path to a PEM client certificate HQ presents to Elasticsearch over HTTPS (with its "
        "key in it, or in `LOGSPACE_ES_CLIENT_KEY`).",
    ),
    Setting(
        "LOGSPACE_ES_CLIENT_KEY",
        "es_client_key",
        _optional_text,
        "",
        "Path to the PEM private key of `LOGSPACE_ES_CLIENT_CERT`.",
    ),
    Setting(
        "LOGSPACE_ES_VERIFY_CERTS",
        "es_verify_certs",
        _boolean,
        "true",
        "Check Elasticsearch's certificate (and Kibana's, for `kibana setup`); `false` only "
        "for local trials: HQ then logs a warning at start.",
    ),
    Setting(
        "LOGSPACE_ES_TIMEOUT",
        "es_timeout",
        _positive_float,
        "30",
        "Seconds one request to Elasticsearch may take.",
    ),
    Setting(
        "LOGSPACE_ES_RETRY_SECONDS",
        "es_retry_seconds",
        _positive_float,
        "5",
        "How long HQ keeps re-sending events Elasticsearch could not take (429, 5xx, "
        "connection failures) before answering 503 with `Retry-After`.",
    ),
    Setting(
        "LOGSPACE_BULK_MAX_EVENTS",
        "bulk_max_events",
        _positive_int,
        "2000",
        "Concurrent requests share bulk requests to Elasticsearch; a shared bulk takes "
        "requests up to this many events (a larger request goes alone).",
    ),
    Setting(
        "LOGSPACE_BULK_MAX_BYTES",
        "bulk_max_bytes",
        _positive_int,
        "8388608",
        "Most bytes of `_bulk` lines in one bulk request; a larger request is split.",
    ),
    Setting(
        "LOGSPACE_BULK_MAX_WAIT_SECONDS",
        "bulk_max_wait_seconds",
        _non_negative_float,
        "0.005",
        "While a bulk is in flight, how long a request may wait for others to share the next "
        "one. With none in flight it goes at once.",
    ),
    Setting(
        "LOGSPACE_BULK_CONCURRENCY",
        "bulk_concurrency",
        _positive_int,
        "2",
        "Shared bulk requests one worker keeps in flight at once; requests gather meanwhile.",
    ),
    Setting(
        "LOGSPACE_SPACE_TOKENS",
        "space_tokens",
        parse_space_tokens,
        "",
        "Comma-separated `space:token` pairs; a space may have several tokens. Required to serve.",
    ),
    Setting(
        "LOGSPACE_INDEX_PREFIX",
        "index_prefix",
        _index_prefix,
        "logspace-events",
        "Prefix of event index names: `<prefix>-<space>-<period>`.",
    ),
    Setting(
        "LOGSPACE_INDEX_PARTITION",
        "index_partition",
        _partition,
        "month",
        "The period each event index holds: `month` (`<yyyy.mm>`), `quarter` (`<yyyy>.q<n>`) "
        "or `year` (`<yyyy>`).",
    ),
    Setting(
        "LOGSPACE_INDEX_REPLICAS",
        "index_replicas",
        _replicas,
        "auto",
        "Replicas of each event index: `auto` (one wherever a second node exists), a number, "
        "or a range such as `0-2`.",
    ),
    Setting(
        "LOGSPACE_SHARDS_WARN_PERCENT",
        "shards_warn_percent",
        _percent,
        "80",
        "Warn (log, metric, readiness detail) when the cluster holds this share of the shards "
        "its data nodes may hold.",
    ),
    Setting(
        "LOGSPACE_INSTALL_TEMPLATES",
        "install_templates",
        _boolean,
        "true",
        "Install or update the index templates when HQ starts (and before the first "
        "write if Elasticsearch was down then).",
    ),
    Setting("LOGSPACE_HOST", "host", _text, "127.0.0.1", "Address `logspace serve` listens on."),
    Setting("LOGSPACE_PORT", "port", _port, "4567", "Port `logspace serve` listens on."),
    Setting(
        "LOGSPACE_KEEP_ALIVE_SECONDS",
        "keep_alive_seconds",
        _positive_int,
        "75",
        "How long `logspace serve` keeps an idle client connection open for its next request.",
    ),
    Setting(
        "LOGSPACE_REQUEST_READ_SECONDS",
        "request_read_seconds",
        _positive_float,
        "30",
        "How long a client may take to send a request's headers (and the start of its body);"
        " the body must then keep coming at 1 KiB/s or faster. Slower: 408 REQUEST_TIMEOUT.",
    ),
    Setting(
        "LOGSPACE_TUNE_GC",
        "tune_gc",
        _boolean,
        "true",
        "Once `logspace serve` has started, freeze what it holds and collect garbage less "
        "often (a fifth of HQ's CPU under a fleet otherwise; see docs/operations.md).",
    ),
    Setting(
        "LOGSPACE_MAX_BODY_BYTES",
        "max_body_bytes",
        _positive_int,
        "10485760",
        "Largest accepted request body in bytes, after gzip decompression; larger bodies get 413.",
    ),
    Setting(
        "LOGSPACE_MAX_EVENTS",
        "max_events",
        _positive_int,
        "10000",
        "Most events accepted in one request; more get 413 TOO_MANY_EVENTS.",
    ),
    Setting(
        "LOGSPACE_MAX_PROPERTIES",
        "max_properties",
        _positive_int,
        "200",
        "Most properties (over all seven families) one event may have.",
    ),
    Setting(
        "LOGSPACE_MAX_PROPERTY_NAME_LENGTH",
        "max_property_name_length",
        _positive_int,
        "255",
        "Longest property name, in characters.",
    ),
    Setting(
        "LOGSPACE_MAX_STRING_LENGTH",
        "max_string_length",
        _positive_int,
        "10485760",
        "Longest string property value, in characters. Values over 8191 characters are "
        "stored but not searchable.",
    ),
    Setting(
        "LOGSPACE_OLDEST_TIMESTAMP",
        "oldest_timestamp",
        _instant,
        "2000-01-01T00:00:00Z",
        "Events with an older timestamp are refused, so they cannot create indices for "
        "years nobody keeps.",
    ),
    Setting(
        "LOGSPACE_MAX_FUTURE_SECONDS",
        "max_future_seconds",
        _positive_int,
        "86400",
        "How far ahead of HQ's clock an event's timestamp may be.",
    ),
    Setting(
        "LOGSPACE_MAX_FIELDS_PER_SPACE",
        "max_fields_per_space",
        _field_budget,
        "1000",
        "Most distinct properties (family and name) a space may create, at most 9900. "
        "An event that would add more is refused before Elasticsearch fails.",
    ),
    Setting(
        "LOGSPACE_MAX_INFLIGHT_BYTES",
        "max_inflight_bytes",
        _positive_int,
        "67108864",
        "Request body bytes one worker processes at once; beyond that HQ answers 503 "
        "OVERLOADED with `Retry-After` at once instead of queueing.",
    ),
    Setting(
        "LOGSPACE_LINGER_MAX_BYTES",
        "linger_max_bytes",
        _positive_int,
        "67108864",
        "After answering before a request body was read (413, 503 OVERLOADED, 403), HQ reads "
        "and discards up to this many more bytes of it before closing, so that clients that "
        "send the whole body before reading see the answer.",
    ),
    Setting(
        "LOGSPACE_LINGER_SECONDS",
        "linger_seconds",
        _positive_float,
        "30",
        "How long HQ goes on discarding such a body (see `LOGSPACE_LINGER_MAX_BYTES`).",
    ),
    Setting(
        "LOGSPACE_SPACE_TOKENS_FILE",
        "space_tokens_file",
        _optional_text,
        "",
        "A file with one `space:token[:access]` entry per line (`#` comments allowed), used "
        "besides `LOGSPACE_SPACE_TOKENS`. HQ reloads it on SIGHUP and when it changes.",
    ),
    Setting(
        "LOGSPACE_TOKENS_RELOAD_SECONDS",
        "tokens_reload_seconds",
        _positive_float,
        "5",
        "How often HQ checks `LOGSPACE_SPACE_TOKENS_FILE` for changes.",
    ),
    Setting(
        "LOGSPACE_RETENTION_KEEP",
        "retention_keep_days",
        _retention_days,
        "",
        "Delete event indices older than this window (e.g. `90d`) from inside HQ; empty: never.",
    ),
    Setting(
        "LOGSPACE_RETENTION_INTERVAL_SECONDS",
        "retention_interval",
        _positive_float,
        "3600",
        "How often HQ applies `LOGSPACE_RETENTION_KEEP`.",
    ),
    Setting(
        "LOGSPACE_LOG_FORMAT",
        "log_format",
        _log_format,
        "text",
        "`text`, or `json` for one JSON object per log line.",
    ),
    Setting(
        "LOGSPACE_ACCESS_LOG",
        "access_log",
        _access_log,
        "all",
        "Which requests get an access line: `all`; `errors`, only those answered with a "
        "status of 400 or more, and those the client gave up on (499); `off`, none. The "
        "metrics count every request either way.",
    ),
    Setting(
        "LOGSPACE_METRICS_TOKEN",
        "metrics_token",
        _metrics_token,
        "",
        "When set, `GET /metrics` answers only requests with `Authorization: Bearer <token>`: "
        "the metrics name every space. Empty: anyone who reaches HQ may read them.",
    ),
    Setting(
        "LOGSPACE_CONTROL_INDEX",
        "control_index",
        _index_prefix,
        "logspace-control",
        "The Elasticsearch index of agent controllers' capabilities; must not match `<prefix>-*`.",
    ),
    Setting(
        "LOGSPACE_ORDERS_DIR",
        "orders_dir",
        _optional_text,
        "",
        "Directory of order files, `<dir>/<space>/<controller-id>.json`; empty: no orders.",
    ),
    Setting(
        "LOGSPACE_ORDERS_RELOAD_SECONDS",
        "orders_reload_seconds",
        _positive_float,
        "5",
        "How often HQ checks `LOGSPACE_ORDERS_DIR` for changed order files.",
    ),
    Setting(
        "LOGSPACE_ORDERS_DEFAULT_COMMIT_SECONDS",
        "orders_default_commit_seconds",
        _commit_seconds,
        str(ORIGINAL_COMMIT_SECONDS),
        "The `commit-max-seconds` HQ serves for an order file without one (the original Java "
        "agents cannot read an order without it).",
    ),
)
