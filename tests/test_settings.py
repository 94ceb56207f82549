"""Settings from the environment and a TOML file; every mistake names the setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from logspace.settings import SETTINGS, Settings, SettingsError
from logspace.spaces.grants import Grant
from logspace.spaces.tokens import load_tokens

TOKENS = {"LOGSPACE_SPACE_TOKENS": "development:development"}


def test_defaults_need_only_the_tokens() -> None:
    settings = Settings.from_env(TOKENS)

    assert settings.space_tokens == {"development": Grant("development")}
    assert settings.es_url == "http://127.0.0.1:9200"
    assert settings.index_prefix == "logspace-events"
    assert settings.port == 4567


def test_elasticsearch_may_be_several_nodes() -> None:
    """Comma-separated URLs, spaces and trailing slashes taken off; one URL is a list of one."""
    several = Settings.from_env(
        {**TOKENS, "LOGSPACE_ES_URL": "http://es1:9200/, https://es2:9200 ,http://es3:9200,"}
    )
    one = Settings.from_env(TOKENS)

    assert several.es_urls == ["http://es1:9200", "https://es2:9200", "http://es3:9200"]
    assert several.es_url == "http://es1:9200,https://es2:9200,http://es3:9200"
    assert one.es_urls == ["http://127.0.0.1:9200"]


def test_partition_and_replicas_are_read_in_any_case() -> None:
    settings = Settings.from_env(
        {**TOKENS, "LOGSPACE_INDEX_PARTITION": " Quarter ", "LOGSPACE_INDEX_REPLICAS": "02"}
    )
    ranged = Settings.from_env({**TOKENS, "LOGSPACE_INDEX_REPLICAS": "1-ALL"})

    assert (settings.index_partition, settings.index_replicas) == ("quarter", "2")
    assert ranged.index_replicas == "1-all"
    assert (Settings.from_env(TOKENS).index_partition, ranged.shards_warn_percent) == ("month", 80)


def test_access_lines_are_all_unless_told_otherwise_in_any_case() -> None:
    assert Settings.from_env(TOKENS).access_log == "all"
    assert Settings.from_env({**TOKENS, "LOGSPACE_ACCESS_LOG": " Errors "}).access_log == "errors"


def test_a_space_may_have_several_tokens_with_their_own_access() -> None:
    settings = Settings.from_env(
        {"LOGSPACE_SPACE_TOKENS": " prod:abc , prod:def:write,staging:x:read,ops:y:read-write"}
    )

    assert settings.space_tokens == {
        "abc": Grant("prod", read=True, write=True),
        "def": Grant("prod", read=False, write=True),
        "x": Grant("staging", read=True, write=False),
        "y": Grant("ops", read=True, write=True),
    }


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LOGSPACE_SPACE_TOKENS": "dev"}, "LOGSPACE_SPACE_TOKENS: 'dev' is not a 'space:token'"),
        ({"LOGSPACE_SPACE_TOKENS": "dev:t:x:y"}, "'dev:t:x:y' is not a 'space:token'"),
        ({"LOGSPACE_SPACE_TOKENS": "dev:t:admin"}, "access 'admin' of a token of space 'dev'"),
        ({"LOGSPACE_SPACE_TOKENS": "Dev:t"}, "space 'Dev' is not a valid space name"),
        ({"LOGSPACE_SPACE_TOKENS": "my-space:t"}, "space 'my-space' is not a valid space name"),
        (
            {"LOGSPACE_SPACE_TOKENS": "a:t,b:t"},
            "one token is configured twice, for space 'a' and 'b'",
        ),
        ({**TOKENS, "LOGSPACE_PORT": "ten"}, "LOGSPACE_PORT='ten' is not a valid integer"),
        ({**TOKENS, "LOGSPACE_PORT": "70000"}, "LOGSPACE_PORT='70000' is not a TCP port"),
        ({**TOKENS, "LOGSPACE_MAX_BODY_BYTES": "0"}, "LOGSPACE_MAX_BODY_BYTES='0' must be greater"),
        (
            {**TOKENS, "LOGSPACE_ES_URL": "localhost:9200"},
            "LOGSPACE_ES_URL='localhost:9200' is not",
        ),
        (
            {**TOKENS, "LOGSPACE_ES_URL": "http://a:9200,b:9200"},
            "LOGSPACE_ES_URL='b:9200' is not an http(s) URL",
        ),
        ({**TOKENS, "LOGSPACE_ES_URL": " , "}, "LOGSPACE_ES_URL=' , ' names no URL"),
        ({**TOKENS, "LOGSPACE_ES_TIMEOUT": "soon"}, "LOGSPACE_ES_TIMEOUT='soon' is not a number"),
        (
            {**TOKENS, "LOGSPACE_INDEX_PARTITION": "week"},
            "LOGSPACE_INDEX_PARTITION='week' is not a partition (month, quarter or year)",
        ),
        (
            {**TOKENS, "LOGSPACE_INDEX_REPLICAS": "some"},
            "LOGSPACE_INDEX_REPLICAS='some' is not a number of replicas",
        ),
        ({**TOKENS, "LOGSPACE_INDEX_REPLICAS": "2-1"}, "LOGSPACE_INDEX_REPLICAS='2-1' is not"),
        (
            {**TOKENS, "LOGSPACE_SHARDS_WARN_PERCENT": "101"},
            "LOGSPACE_SHARDS_WARN_PERCENT='101' must be a percentage from 1 to 100",
        ),
        ({**TOKENS, "LOGSPACE_INDEX_PREFIX": "Events"}, "LOGSPACE_INDEX_PREFIX='Events' is not a"),
        ({**TOKENS, "LOGSPACE_INSTALL_TEMPLATES": "maybe"}, "'maybe' is not a boolean"),
        (
            {**TOKENS, "LOGSPACE_ACCESS_LOG": "4xx"},
            "LOGSPACE_ACCESS_LOG='4xx' is not one of all, errors, off",
        ),
        (
            {**TOKENS, "LOGSPACE_MAX_INFLIGHT_BYTES": "10", "LOGSPACE_MAX_BODY_BYTES": "11"},
            "LOGSPACE_MAX_INFLIGHT_BYTES=10 must be at least LOGSPACE_MAX_BODY_BYTES=11",
        ),
    ],
)
def test_invalid_settings_fail_naming_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env(environ)


def test_a_config_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "logspace.toml"
    config.write_text(
        'es_url = "http://es.example:9200"\nport = 8080\ninstall_templates = false\n'
        'space_tokens = "ops:secret"\n'
    )

    settings = Settings.from_env({"LOGSPACE_CONFIG": str(config), "LOGSPACE_PORT": "9000"})

    assert settings.es_url == "http://es.example:9200"
    assert settings.port == 9000
    assert settings.install_templates is False
    assert settings.space_tokens == {"secret": Grant("ops")}


def test_unknown_keys_in_the_config_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "logspace.toml"
    config.write_text('es_ulr = "http://x:9200"\n')

    with pytest.raises(SettingsError, match="unknown setting 'es_ulr'"):
        Settings.from_env({**TOKENS, "LOGSPACE_CONFIG": str(config)})


def test_a_missing_config_file_is_reported() -> None:
    with pytest.raises(
        SettingsError, match=re.escape("LOGSPACE_CONFIG='/nonexistent.toml' cannot be read")
    ):
        Settings.from_env({**TOKENS, "LOGSPACE_CONFIG": "/nonexistent.toml"})


def test_secrets_do_not_appear_in_the_settings_repr() -> None:
    settings = Settings.from_env(
        {**TOKENS, "LOGSPACE_ES_PASSWORD": "hunter2", "LOGSPACE_ES_API_KEY": "k3y"}
    )

    assert "hunter2" not in repr(settings)
    assert "k3y" not in repr(settings)
    assert "development" not in repr(settings)


@pytest.mark.parametrize("tokens", [{}, {"LOGSPACE_SPACE_TOKENS": " , "}])
def test_serving_needs_at_least_one_token(tokens: dict[str, str]) -> None:
    settings = Settings.from_env(tokens)

    with pytest.raises(SettingsError, match="No space tokens"):
        load_tokens(settings)


def test_every_setting_has_a_field() -> None:
    fields = set(Settings.__dataclass_fields__)
    assert {setting.field for setting in SETTINGS} == fields
