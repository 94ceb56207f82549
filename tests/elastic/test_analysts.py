"""Analysts by space, on the node with security on: `logspace spaces grant | analyst | revoke |
show`. An analyst of space alpha reads alpha's events, and nothing of beta's, nor anything else
on the cluster; running a command twice changes nothing; revoking takes the access away."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import orjson
import pytest

from logspace.settings import Settings
from logspace.testing import make_event

from ..clusters import SecureNode
from ..secure_hq import put_events, serve_hq


class Admin:
    """`logspace spaces ...` as `elastic` on the secure node, under the test's prefix; run as
    a process, as an operator runs it."""

    def __init__(self, node: SecureNode, prefix: str) -> None:
        self.environ = {k: v for k, v in os.environ.items() if not k.startswith("LOGSPACE_")}
        self.environ |= {
            "LOGSPACE_ES_URL": node.url,
            "LOGSPACE_ES_CA_CERTS": str(node.ca),
            "LOGSPACE_ES_USERNAME": node.user,
            "LOGSPACE_ES_PASSWORD": node.password,
            "LOGSPACE_INDEX_PREFIX": prefix,
        }

    def run(self, *args: str, stdin: str = "", **environ: str) -> tuple[int, list[str], str]:
        """Exit status, stdout lines and stderr of `logspace spaces ARGS`."""
        done = subprocess.run(
            [sys.executable, "-m", "logspace", "spaces", *args],
            env=self.environ | environ, input=stdin, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        return done.returncode, done.stdout.splitlines(), done.stderr

    def ok(self, *args: str, stdin: str = "") -> list[str]:
        status, lines, err = self.run(*args, stdin=stdin)
        assert status == 0, err
        return lines


@pytest.fixture
def admin(secure_es: SecureNode, secure_prefix: str) -> Admin:
    return Admin(secure_es, secure_prefix)


@pytest.fixture
def alpha_and_beta(
    secure_es: SecureNode, secure_settings: Settings, secure_prefix: str
) -> dict[str, list[str]]:
    """Events of spaces alpha and beta stored by HQ (through TLS); their ids by space."""
    events = {space: [make_event(), make_event()] for space in ("alpha", "beta")}

    async def store() -> None:
        async with serve_hq(secure_settings) as hq:
            for space, batch in events.items():
                answer = await hq.put("/events", **put_events(batch, f"{space}-token"))
                assert answer.status_code == 202, answer.text

    asyncio.run(store())
    with secure_es.client() as elastic:
        elastic.post(f"/{secure_prefix}-*/_refresh").raise_for_status()
    return {space: sorted(e["id"] for e in batch) for space, batch in events.items()}


def index_of(node: SecureNode, prefix: str, space: str) -> str:
    with node.client() as elastic:
        rows = elastic.get(
            f"/_cat/indices/{prefix}-{space}-*", params={"format": "json", "h": "index"}
        ).json()
    (row,) = rows
    index: str = row["index"]
    return index


def ids(response: httpx.Response) -> list[str]:
    return sorted(hit["_source"]["id"] for hit in response.json()["hits"]["hits"])


@pytest.fixture
def alpha_key(admin: Admin, secure_prefix: str) -> dict[str, str]:
    """The headers of a new API key of space alpha, made with `spaces analyst --api-key`."""
    lines = admin.ok("analyst", "alpha", f"{secure_prefix}-bot", "--api-key")
    key = lines[-1].rpartition(": ")[2]
    return {"authorization": f"ApiKey {key}"}


# -- what an analyst of alpha may do --------------------------------------------------------


def test_an_api_key_of_alpha_reads_alpha_and_gets_403_on_every_beta_index(
    secure_es: SecureNode, secure_prefix: str, alpha_and_beta: dict[str, list[str]],
    alpha_key: dict[str, str],
) -> None:  # fmt: skip
    alpha = index_of(secure_es, secure_prefix, "alpha")
    beta = index_of(secure_es, secure_prefix, "beta")
    an_id = alpha_and_beta["beta"][0]
    with secure_es.client(auth=None, headers=alpha_key) as analyst:
        found = analyst.post(f"/{secure_prefix}-alpha-*/_search")
        refused = {
            path: analyst.request(method, path, json=body).status_code
            for method, path, body in [
                ("POST", f"/{beta}/_search", {}),
                ("GET", f"/{beta}/_count", None),
                ("GET", f"/{beta}/_doc/{an_id}", None),
                ("GET", f"/{beta}/_mapping", None),
                ("GET", f"/{beta}/_field_caps?fields=*", None),
                ("GET", f"/{beta}/_settings", None),
                ("POST", f"/{alpha},{beta}/_search", {}),
                ("POST", f"/{secure_prefix}-beta-*,{beta}/_search", {}),
            ]
        }

    assert found.status_code == 200, found.text
    assert ids(found) == alpha_and_beta["alpha"]
    assert refused == dict.fromkeys(refused, 403)


def test_searching_everything_finds_alpha_only(
    secure_es: SecureNode, secure_prefix: str, alpha_and_beta: dict[str, list[str]],
    alpha_key: dict[str, str],
) -> None:  # fmt: skip
    """Elasticsearch resolves wildcards to the indices the key may read: a search over every
    event index (or every index) answers 200 with alpha's events, never 403 and never one of
    beta's; a pattern that only matches beta's indices finds nothing."""
    with secure_es.client(auth=None, headers=alpha_key) as analyst:
        everywhere = {
            path: analyst.post(path, json={"size": 100})
            for path in (f"/{secure_prefix}-*/_search", "/_search", "/*/_search", "/_all/_search")
        }
        only_beta = analyst.post(f"/{secure_prefix}-beta-*/_search")
        multi = analyst.post(
            "/_msearch",
            content=orjson.dumps({"index": index_of(secure_es, secure_prefix, "beta")}) + b"\n{}\n",
            headers={"content-type": "application/x-ndjson"},
        )

    for path, response in everywhere.items():
        assert response.status_code == 200, path
        assert ids(response) == alpha_and_beta["alpha"], path
    assert (only_beta.status_code, ids(only_beta)) == (200, [])
    assert multi.json()["responses"][0]["status"] == 403


def test_an_api_key_of_alpha_may_do_nothing_else(
    secure_es: SecureNode, secure_prefix: str, alpha_and_beta: dict[str, list[str]],
    alpha_key: dict[str, str],
) -> None:  # fmt: skip
    """No writes, deletes or mapping changes to alpha, nothing of HQ's control index, the
    cluster, security, templates or system indices."""
    alpha = index_of(secure_es, secure_prefix, "alpha")
    bulk = b'{"create":{"_index":"%s","_id":"x"}}\n{"id":"x"}\n' % alpha.encode()
    with secure_es.client(auth=None, headers=alpha_key) as analyst:
        answers = {
            f"{method} {path}": analyst.request(method, path, json=body).status_code
            for method, path, body in [
                ("PUT", f"/{alpha}/_doc/x", {"id": "x"}),
                ("POST", f"/{alpha}/_doc", {"id": "x"}),
                ("DELETE", f"/{alpha}/_doc/{alpha_and_beta['alpha'][0]}", None),
                ("DELETE", f"/{alpha}", None),
                ("PUT", f"/{alpha}/_mapping", {"properties": {"x": {"type": "keyword"}}}),
                ("PUT", f"/{alpha}/_settings", {"index": {"number_of_replicas": 0}}),
                ("POST", f"/{alpha}/_close", None),
                ("PUT", f"/{secure_prefix}-alpha-2099.01", None),
                ("POST", f"/{secure_prefix}.control/_search", {}),
                ("GET", "/_cluster/health", None),
                ("GET", "/_cluster/state", None),
                ("GET", "/_nodes", None),
                ("GET", "/_cat/indices", None),
                ("GET", "/_security/user", None),
                ("GET", "/_security/role", None),
                ("PUT", "/_security/role/x", {"indices": []}),
                ("POST", "/_security/api_key", {"name": "x"}),
                ("GET", "/_index_template", None),
                ("GET", "/_component_template", None),
                ("POST", "/.security/_search", {}),
                ("GET", "/_snapshot", None),
                (
                    "PUT",
                    "/_cluster/settings",
                    {"persistent": {"action.destructive_requires_name": True}},
                ),
            ]
        }
        bulk_answer = analyst.post(
            "/_bulk", content=bulk, headers={"content-type": "application/x-ndjson"}
        )

    assert answers == dict.fromkeys(answers, 403)
    # A key that may write nowhere has its whole bulk refused.
    assert bulk_answer.status_code == 403, bulk_answer.text


# -- the commands' semantics ------------------------------------------------------------------


def test_granting_twice_changes_nothing_and_a_changed_role_is_put_back(
    admin: Admin, secure_es: SecureNode, secure_prefix: str
) -> None:
    role = f"{secure_prefix}-alpha-reader"

    first = admin.ok("grant", "alpha")
    second = admin.ok("grant", "alpha")
    with secure_es.client() as elastic:
        widened = elastic.get(f"/_security/role/{role}").json()[role]
        widened["indices"][0]["names"].append(f"{secure_prefix}-beta-*")
        widened.pop("transient_metadata")
        elastic.put(f"/_security/role/{role}", json=widened).raise_for_status()
    third = admin.ok("grant", "alpha")
    with secure_es.client() as elastic:
        restored = elastic.get(f"/_security/role/{role}").json()[role]

    assert first == [f"role {role}: created"]
    assert second == [f"role {role}: unchanged"]
    assert third == [f"role {role}: updated"]
    assert restored["indices"] == [
        {
            "names": [f"{secure_prefix}-alpha-*"],
            "privileges": ["read", "view_index_metadata"],
            "allow_restricted_indices": False,
        }
    ]
    assert restored["cluster"] == []


def test_an_analyst_user_is_made_once_and_reads_alpha_only(
    admin: Admin, secure_es: SecureNode, secure_prefix: str, alpha_and_beta: dict[str, list[str]]
) -> None:
    name = f"{secure_prefix}-alice"
    made = admin.ok("analyst", "alpha", name, "--password-stdin", stdin="alice-password-1\n")
    again = admin.ok("analyst", "alpha", name)
    beta = index_of(secure_es, secure_prefix, "beta")
    with secure_es.client(auth=(name, "alice-password-1")) as alice:
        me = alice.get("/_security/_authenticate").json()
        found = alice.post(f"/{secure_prefix}-alpha-*/_search")
        refused = alice.post(f"/{beta}/_search")

    reader, kibana = f"{secure_prefix}-alpha-reader", f"{secure_prefix}-alpha-kibana"
    assert made == [f"role {reader}: created", f"user {name}: created"]
    assert again == [f"role {reader}: unchanged", f"user {name}: unchanged"]
    assert me["roles"] == [reader, kibana]
    assert ids(found) == alpha_and_beta["alpha"]
    assert refused.status_code == 403


def test_a_new_user_without_a_password_gets_one_shown_once(
    admin: Admin, secure_es: SecureNode, secure_prefix: str
) -> None:
    name = f"{secure_prefix}-bob"

    lines = admin.ok("analyst", "alpha", name)

    assert lines[1] == f"user {name}: created"
    label, _, password = lines[2].rpartition(": ")
    assert label == f"password of {name} (shown only now)"
    assert len(password) >= 20
    with secure_es.client(auth=(name, password)) as bob:
        assert bob.get("/_security/_authenticate").status_code == 200


def test_an_existing_user_keeps_its_roles_and_gains_the_space(
    admin: Admin, secure_es: SecureNode, secure_prefix: str
) -> None:
    name = f"{secure_prefix}-carol"
    with secure_es.client() as elastic:
        elastic.put(
            f"/_security/user/{name}",
            json={"password": "carol-password-1", "roles": ["viewer"], "email": "c@example.com"},
        ).raise_for_status()

    lines = admin.ok("analyst", "beta", name)
    with secure_es.client() as elastic:
        carol = elastic.get(f"/_security/user/{name}").json()[name]
    with secure_es.client(auth=(name, "carol-password-1")) as login:
        still = login.get("/_security/_authenticate")

    assert lines[-1] == f"user {name}: updated"
    assert carol["roles"] == [
        "viewer",
        f"{secure_prefix}-beta-reader",
        f"{secure_prefix}-beta-kibana",
    ]
    assert carol["email"] == "c@example.com"
    assert still.status_code == 200, "the password was kept"


def test_a_new_api_key_each_time_older_ones_listed_or_rotated(
    admin: Admin, secure_es: SecureNode, secure_prefix: str
) -> None:
    name = f"{secure_prefix}-ci"

    first = admin.ok("analyst", "alpha", name, "--api-key", "--expiration", "30d")
    second = admin.ok("analyst", "alpha", name, "--api-key")
    third = admin.ok("analyst", "alpha", name, "--api-key", "--rotate")

    def key_id(lines: list[str]) -> str:
        return lines[1].split("(")[1].split(")")[0]

    def key(lines: list[str]) -> dict[str, str]:
        return {"authorization": f"ApiKey {lines[-1].rpartition(': ')[2]}"}

    one, two, three = key_id(first), key_id(second), key_id(third)
    assert second[2] == f"api key {name} ({one}): still valid"
    assert sorted(third[2:4]) == sorted(
        [f"api key {name} ({one}): invalidated", f"api key {name} ({two}): invalidated"]
    )
    with secure_es.client() as elastic:
        keys = elastic.get("/_security/api_key", params={"name": name}).json()["api_keys"]
    state = {k["id"]: (k["invalidated"], "expiration" in k) for k in keys}
    assert state == {one: (True, True), two: (True, False), three: (False, False)}
    for lines, status in ((first, 401), (third, 200)):
        with secure_es.client(auth=None, headers=key(lines)) as client:
            assert client.get(f"/{secure_prefix}-alpha-*/_count").status_code == status


def test_revoking_an_analyst_takes_their_user_and_keys_and_leaves_the_others(
    admin: Admin, secure_es: SecureNode, secure_prefix: str, alpha_and_beta: dict[str, list[str]]
) -> None:
    dave, erin = f"{secure_prefix}-dave", f"{secure_prefix}-erin"
    admin.ok("analyst", "alpha", dave, "--password-stdin", stdin="dave-password-1\n")
    key_lines = admin.ok("analyst", "alpha", dave, "--api-key")
    admin.ok("analyst", "alpha", erin, "--password-stdin", stdin="erin-password-1\n")
    dave_key = {"authorization": f"ApiKey {key_lines[-1].rpartition(': ')[2]}"}

    lines = admin.ok("revoke", "alpha", dave)
    again = admin.ok("revoke", "alpha", dave)

    assert lines[0] == f"user {dave}: deleted (it had no other role)"
    assert lines[1].startswith(f"api key {dave} (")
    assert lines[1].endswith("): invalidated")
    assert again == [f"user {dave}: not found"]
    with secure_es.client(auth=(dave, "dave-password-1")) as client:
        assert client.get("/_security/_authenticate").status_code == 401
    with secure_es.client(auth=None, headers=dave_key) as client:
        assert client.get(f"/{secure_prefix}-alpha-*/_count").status_code == 401
    with secure_es.client(auth=(erin, "erin-password-1")) as client:
        assert client.post(f"/{secure_prefix}-alpha-*/_search").status_code == 200


def test_revoking_a_space_from_everyone_survives_granting_it_again(
    admin: Admin, secure_es: SecureNode, secure_prefix: str, alpha_and_beta: dict[str, list[str]]
) -> None:
    """Users kept for their other roles lose the space's roles, so a later grant of the space
    gives nobody their old access back."""
    frank = f"{secure_prefix}-frank"
    admin.ok("analyst", "alpha", frank, "--password-stdin", stdin="frank-password-1\n")
    admin.ok("analyst", "beta", frank)
    admin.ok("analyst", "alpha", f"{secure_prefix}-key", "--api-key")

    lines = admin.ok("revoke", "alpha")
    admin.ok("grant", "alpha")
    shown = admin.ok("show", "alpha")

    assert f"user {frank}: roles of space alpha removed" in lines
    assert [line for line in lines if line.endswith("): invalidated")]
    assert lines[-2:] == [
        f"role {secure_prefix}-alpha-reader: deleted",
        f"role {secure_prefix}-alpha-kibana: absent",
    ]
    assert shown == [
        f"role {secure_prefix}-alpha-reader: present",
        f"role {secure_prefix}-alpha-kibana: missing",
    ]
    with secure_es.client(auth=(frank, "frank-password-1")) as client:
        alpha = client.post(f"/{index_of(secure_es, secure_prefix, 'alpha')}/_search")
        beta = client.post(f"/{secure_prefix}-beta-*/_search")
    assert alpha.status_code == 403
    assert ids(beta) == alpha_and_beta["beta"]


def test_show_lists_who_may_read_the_space(admin: Admin, secure_prefix: str) -> None:
    admin.ok("analyst", "alpha", f"{secure_prefix}-gina", "--password-stdin", stdin="gina-pass-1\n")
    made = admin.ok("analyst", "alpha", f"{secure_prefix}-bot", "--api-key", "--expiration", "7d")
    key_id = made[1].split("(")[1].split(")")[0]

    shown = admin.ok("show", "alpha")

    assert shown[:3] == [
        f"role {secure_prefix}-alpha-reader: present",
        f"role {secure_prefix}-alpha-kibana: missing",
        f"user {secure_prefix}-gina",
    ]
    assert shown[3].startswith(f"api key {secure_prefix}-bot ({key_id}), expires 20")


def test_a_user_without_security_privileges_is_told_why(
    admin: Admin, secure_es: SecureNode, secure_prefix: str
) -> None:
    """HQ's own credentials cannot manage security: the command fails, naming the refusal."""
    name = f"{secure_prefix}-hq"
    with secure_es.client() as elastic:
        elastic.put(
            f"/_security/user/{name}", json={"password": "hq-password-1", "roles": ["viewer"]}
        ).raise_for_status()

    status, lines, err = admin.run(
        "grant", "alpha", LOGSPACE_ES_USERNAME=name, LOGSPACE_ES_PASSWORD="hq-password-1"
    )

    assert (status, lines) == (1, [])
    assert err.startswith(f"logspace: Could not read role {secure_prefix}-alpha-reader: ")
    assert "Elasticsearch answered 403: action [cluster:admin/xpack/security/role/get]" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("analyst", "alpha", "x", "--rotate"), "--expiration and --rotate are for --api-key"),
        (("analyst", "alpha", "x", "--api-key", "--password-stdin"), "an API key has no password"),
        (("analyst", "Alpha", "x"), "'Alpha' is not a space name"),
        (("analyst", "alpha", "x y"), "'x y' is not an analyst name"),
        (("revoke",), "the following arguments are required: space"),
    ],
)
def test_bad_arguments_are_refused_with_status_2(
    admin: Admin, args: tuple[str, ...], message: str
) -> None:
    status, lines, err = admin.run(*args)

    assert (status, lines) == (2, [])
    assert message in err
