"""The rules of a space's analyst access, without Elasticsearch: names, role bodies, what
granting and revoking do to a user."""

from __future__ import annotations

import pytest

from logspace.spaces.analysts import (
    SpaceAccess,
    role_differs,
    user_with_space,
    user_without_space,
)

ALPHA = SpaceAccess("logspace-events", "alpha")


def test_everything_is_named_after_the_prefix_and_the_space() -> None:
    assert ALPHA.index_pattern == "logspace-events-alpha-*"
    assert ALPHA.roles == ("logspace-events-alpha-reader", "logspace-events-alpha-kibana")
    assert ALPHA.kibana_space == "logspace-events-alpha"


def test_a_kibana_space_id_has_no_dots() -> None:
    """Kibana allows a-z 0-9 _ - in space ids; index prefixes may have dots."""
    assert SpaceAccess("acme.events", "ops").kibana_space == "acme_events-ops"


def test_the_reader_role_reads_the_spaces_indices_and_nothing_else() -> None:
    body = ALPHA.reader_role_body()

    assert body["cluster"] == []
    assert body["indices"] == [
        {"names": ["logspace-events-alpha-*"], "privileges": ["read", "view_index_metadata"]}
    ]
    assert set(body) == {"description", "cluster", "indices", "metadata"}


def test_an_api_key_carries_a_copy_of_the_reader_role_and_whose_it_is() -> None:
    body = ALPHA.api_key_body("ci-bot", expiration_days=30)

    assert body["role_descriptors"] == {
        "logspace-events-alpha-reader": {
            "cluster": [],
            "indices": ALPHA.reader_role_body()["indices"],
        }
    }
    assert body["metadata"] == {
        "logspace": {"prefix": "logspace-events", "space": "alpha", "analyst": "ci-bot"}
    }
    assert body["expiration"] == "30d"
    assert "expiration" not in ALPHA.api_key_body("ci-bot", expiration_days=None)


def test_a_role_as_elasticsearch_gives_it_back_is_not_different() -> None:
    wanted = ALPHA.reader_role_body()
    installed = {
        **wanted,
        "indices": [{**wanted["indices"][0], "allow_restricted_indices": False}],
        "applications": [],
        "run_as": [],
        "transient_metadata": {"enabled": True},
    }

    assert not role_differs(wanted, installed)
    assert role_differs(wanted, {**installed, "cluster": ["monitor"]})
    widened = [{**installed["indices"][0], "names": ["logspace-events-*"]}]
    assert role_differs(wanted, {**installed, "indices": widened})
    assert role_differs(wanted, {**installed, "description": "changed by hand"})


def test_a_new_user_gets_both_roles_and_is_marked_as_ours() -> None:
    body, outcome = user_with_space("alice", None, ALPHA, "secret-1")

    assert outcome == "created"
    assert body is not None
    assert body["roles"] == list(ALPHA.roles)
    assert body["password"] == "secret-1"
    assert body["metadata"] == {"logspace": {"managed": True}}
    with pytest.raises(ValueError, match="needs a password"):
        user_with_space("alice", None, ALPHA, None)


def test_an_existing_user_keeps_what_it_had() -> None:
    existing = {
        "username": "bob",
        "roles": ["viewer", "logspace-events-alpha-reader"],
        "full_name": "Bob",
        "email": "bob@example.com",
        "metadata": {"team": "ops"},
        "enabled": True,
    }

    body, outcome = user_with_space("bob", existing, ALPHA, None)

    assert outcome == "updated"
    assert body == {
        "roles": ["viewer", "logspace-events-alpha-reader", "logspace-events-alpha-kibana"],
        "full_name": "Bob",
        "email": "bob@example.com",
        "metadata": {"team": "ops"},
        "enabled": True,
    }
    assert user_with_space("bob", {**existing, "roles": body["roles"]}, ALPHA, None) == (
        None,
        "unchanged",
    )
    again, changed = user_with_space("bob", {**existing, "roles": body["roles"]}, ALPHA, "new-pw")
    assert (changed, again and again["password"]) == ("updated", "new-pw")


def test_revoking_deletes_only_users_we_made_that_have_nothing_left() -> None:
    ours = {
        "username": "a",
        "roles": list(ALPHA.roles),
        "metadata": {"logspace": {"managed": True}},
    }
    theirs = {"username": "b", "roles": list(ALPHA.roles), "metadata": {}}
    busy = {**ours, "roles": [*ALPHA.roles, "logspace-events-beta-reader"]}

    assert user_without_space(ours, ALPHA) == (None, "delete")
    assert user_without_space(theirs, ALPHA) == ({"roles": []}, "updated")
    assert user_without_space(busy, ALPHA) == (
        {"roles": ["logspace-events-beta-reader"], "metadata": {"logspace": {"managed": True}}},
        "updated",
    )
    assert user_without_space({"username": "c", "roles": ["viewer"]}, ALPHA) == (None, "unchanged")


def test_the_key_query_finds_the_spaces_valid_keys_by_name() -> None:
    query = ALPHA.keys_query("ci-bot")["query"]["bool"]["filter"]

    assert {"term": {"metadata.logspace.space": "alpha"}} in query
    assert {"term": {"metadata.logspace.prefix": "logspace-events"}} in query
    assert {"term": {"invalidated": False}} in query
    assert {"term": {"name": "ci-bot"}} in query
    assert len(ALPHA.keys_query()["query"]["bool"]["filter"]) == 3
