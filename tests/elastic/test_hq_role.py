"""HQ's least-privilege role (index_templates/role-hq.json), on the node with security on:
`docker/es-users.sh` installs exactly that file; as the user it makes, HQ does all it does
through TLS; without one of its privileges, the operation that needs it fails."""

from __future__ import annotations

import os
import subprocess
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import ElasticsearchWarning

from logspace.elastic import security, templates
from logspace.elastic.store import Store
from logspace.errors import StoreUnavailable
from logspace.ops import retention
from logspace.settings import Settings
from logspace.spaces.analysts import role_differs
from logspace.testing import make_event

from ..clusters import SecureNode
from ..secure_hq import as_user, put_events, serve_hq

ROOT = Path(__file__).resolve().parents[2]
ES_USERS = ROOT / "docker" / "es-users.sh"
ROLE_FILE = ROOT / "index_templates" / "role-hq.json"
PASSWORD = "hq-password-1"

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class HqUser:
    name: str
    role: str


def run_es_users(node: SecureNode, prefix: str, user: str, role: str) -> str:
    """docker/es-users.sh, as the `es-users` service runs it, against the secure node."""
    env = {
        "PATH": os.environ["PATH"],
        "ES_URL": node.url,
        "ES_CA": str(node.ca),
        "ROLE_FILE": str(ROLE_FILE),
        "ELASTIC_PASSWORD": node.password,
        "KIBANA_PASSWORD": "kibana-password-1",
        "LOGSPACE_ES_USERNAME": user,
        "LOGSPACE_ES_PASSWORD": PASSWORD,
        "LOGSPACE_ES_ROLE": role,
        "LOGSPACE_INDEX_PREFIX": prefix,
        "LOGSPACE_CONTROL_INDEX": f"{prefix}.control",
    }
    done = subprocess.run(
        [str(ES_USERS)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def hq_user(secure_es: SecureNode, secure_prefix: str) -> HqUser:
    """HQ's user and role, made by docker/es-users.sh for this test's prefix."""
    user = HqUser(f"{secure_prefix}-hq", f"{secure_prefix}-hq-role")
    output = run_es_users(secure_es, secure_prefix, user.name, user.role)
    assert output.splitlines()[-1] == f"es-users: role {user.role} and user {user.name} ready"
    return user


def test_the_stack_script_installs_the_role_file_with_the_prefix_filled_in(
    secure_es: SecureNode, secure_prefix: str, hq_user: HqUser
) -> None:
    """One definition: the role es-users.sh installs is the one HQ's code reads."""
    with secure_es.client() as elastic:
        installed = elastic.get(f"/_security/role/{hq_user.role}").json()[hq_user.role]
        user = elastic.get(f"/_security/user/{hq_user.name}").json()[hq_user.name]

    wanted = security.hq_role(secure_prefix, f"{secure_prefix}.control")
    assert not role_differs(wanted, installed), installed
    assert installed["indices"][0]["names"] == [f"{secure_prefix}-*"]
    assert "{prefix}" not in str(installed)
    assert user["roles"] == [hq_user.role]


def test_the_role_file_has_a_version_and_says_what_it_is_for() -> None:
    role = security.hq_role("logspace-events", "logspace-control")

    assert role["metadata"] == {"managed_by": "logspace", "version": 2}
    assert "logspace-events-*" in role["description"]
    assert "manage" not in str(role["indices"]).replace("manage_", "")
    assert "all" not in role["cluster"]


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y.%m")


async def test_hq_does_everything_it_does_through_tls_as_its_own_user(
    secure_es: SecureNode, secure_settings: Settings, secure_prefix: str, hq_user: HqUser
) -> None:
    """Templates, an older index's mappings, writes (new monthly indices included), the query
    API, the control index and retention, all as the user es-users.sh made, over HTTPS."""
    prefix = secure_prefix
    old_index = f"{prefix}-alpha-2015.05"
    with secure_es.client() as elastic:
        version_1 = {k: v for k, v in _event_mappings(prefix).items() if k != "_meta"}
        elastic.put(f"/{old_index}", json={"mappings": version_1}).raise_for_status()
    settings = as_user(secure_settings, hq_user.name, PASSWORD)
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    events = [make_event(timestamp=now), make_event(timestamp="2015-06-01T00:00:00Z")]

    async with serve_hq(settings) as hq:
        ready = await hq.get("/health/ready")
        stored = await hq.put("/events", **put_events(events, "alpha-token"))
        again = await hq.put("/events", **put_events(events, "alpha-token"))
        with secure_es.client() as elastic:
            elastic.post(f"/{prefix}-*/_refresh").raise_for_status()
        read = await hq.get("/events", headers={"logspace.space-token": "alpha-reader"})
        uploaded = await hq.put(
            "/capabilities/monitor",
            json={
                "id": "monitor",
                "system": "host1",
                "agent-capabilities": [{"id": "os/cpu", "trigger-types": ["Off"]}],
            },
            headers={"logspace.space-token": "alpha-token"},
        )
        listed = await hq.get("/capabilities", headers={"logspace.space-token": "alpha-token"})
    store = Store(settings)
    try:
        retained = await retention.apply(store, prefix, 90)
    finally:
        await store.close()

    assert ready.status_code == 200, ready.text
    assert (stored.status_code, again.status_code) == (202, 202), stored.text
    assert read.status_code == 200, read.text
    assert sorted(e["id"] for e in read.json()["events"]) == sorted(e["id"] for e in events)
    assert uploaded.status_code == 200, uploaded.text
    assert [entry["id"] for entry in listed.json()["capabilities"]] == ["monitor"]
    assert sorted(index.name for index in retained.expired) == [
        f"{prefix}-alpha-2015.05",
        f"{prefix}-alpha-2015.06",
    ]
    with secure_es.client() as elastic:
        left = elastic.get(f"/_cat/indices/{prefix}-*", params={"format": "json", "h": "index"})
        me = elastic.get("/_security/_authenticate", auth=(hq_user.name, PASSWORD))
    assert [row["index"] for row in left.json()] == [f"{prefix}-alpha-{this_month()}"]
    assert me.json()["roles"] == [hq_user.role]


async def test_an_older_index_is_brought_up_to_date_by_hqs_own_user(
    secure_es: SecureNode, secure_settings: Settings, secure_prefix: str, hq_user: HqUser
) -> None:
    index = f"{secure_prefix}-alpha-2026.06"
    with secure_es.client() as elastic:
        version_1 = {k: v for k, v in _event_mappings(secure_prefix).items() if k != "_meta"}
        elastic.put(f"/{index}", json={"mappings": version_1}).raise_for_status()

    store = Store(as_user(secure_settings, hq_user.name, PASSWORD))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = await store.install_templates()
    finally:
        await store.close()

    version = templates.mappings_version(templates.load(secure_prefix))
    assert f"index {index}: mappings updated 1 -> {version}" in report
    # With the update-mapping action granted by name, not through `create_doc`, whose grant
    # of it Elasticsearch deprecates (and a coming major version drops).
    assert [str(w.message) for w in caught if issubclass(w.category, ElasticsearchWarning)] == []
    with secure_es.client() as elastic:
        mapping = elastic.get(f"/{index}/_mapping").json()[index]["mappings"]
    assert mapping["_meta"] == {"version": version}


def _event_mappings(prefix: str) -> dict[str, Any]:
    (mappings,) = [
        t.body["template"]["mappings"]
        for t in templates.load(prefix)
        if t.name.endswith("-mappings")
    ]
    return dict(mappings)


# -- one privilege less ---------------------------------------------------------------------


def role_without(prefix: str, privilege: str) -> dict[str, Any]:
    role = security.hq_role(prefix, f"{prefix}.control")
    role["cluster"] = [p for p in role["cluster"] if p != privilege]
    for entry in role["indices"]:
        entry["privileges"] = [p for p in entry["privileges"] if p != privilege]
    return role


@pytest.fixture
def hq_missing(secure_es: SecureNode, secure_settings: Settings, secure_prefix: str) -> Any:
    """`hq_missing(privilege)`: HQ's settings as a user whose role is HQ's without it."""

    def make(privilege: str) -> Settings:
        name = f"{secure_prefix}-no-{privilege}"
        with secure_es.client() as elastic:
            elastic.put(
                f"/_security/role/{name}", json=role_without(secure_prefix, privilege)
            ).raise_for_status()
            elastic.put(
                f"/_security/user/{name}", json={"password": PASSWORD, "roles": [name]}
            ).raise_for_status()
        return as_user(secure_settings, name, PASSWORD)

    return make


async def test_without_manage_index_templates_hq_cannot_install_its_templates(
    hq_missing: Any,
) -> None:
    store = Store(hq_missing("manage_index_templates"))
    try:
        with pytest.raises(StoreUnavailable) as refused:
            await store.install_templates()
    finally:
        await store.close()

    assert "Elasticsearch answered 403 (security_exception)" in refused.value.message


async def test_without_auto_configure_hq_cannot_start_a_new_month(
    secure_settings: Settings, hq_missing: Any
) -> None:
    """The templates are in place (as `elastic`); HQ's user may write documents but not make
    the month's index, so Elasticsearch refuses each event, and HQ says so (422)."""
    store = Store(secure_settings)
    try:
        await store.install_templates()
    finally:
        await store.close()
    settings = hq_missing("auto_configure")

    async with serve_hq(settings) as hq:
        refused = await hq.put("/events", **put_events([make_event()], "alpha-token"))

    assert refused.status_code == 422, refused.text
    assert refused.json()["parameters"]["errors"][0]["error"] == "security_exception"


async def test_without_delete_index_retention_fails_and_says_why(
    secure_es: SecureNode, secure_prefix: str, hq_missing: Any
) -> None:
    with secure_es.client() as elastic:
        elastic.put(f"/{secure_prefix}-alpha-2015.05").raise_for_status()
    store = Store(hq_missing("delete_index"))
    try:
        with pytest.raises(StoreUnavailable) as refused:
            await retention.apply(store, secure_prefix, 90)
    finally:
        await store.close()

    assert refused.value.message.startswith("Could not delete indices: Elasticsearch answered 403")
    with secure_es.client() as elastic:
        assert elastic.head(f"/{secure_prefix}-alpha-2015.05").status_code == 200


def test_the_operations_guide_explains_every_privilege_of_the_role_and_no_other() -> None:
    """docs/operations.md's table of HQ's role lists exactly the file's privileges."""
    guide = (ROOT / "docs" / "operations.md").read_text()
    section = guide.split("## HQ's Elasticsearch role", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for row in section.splitlines():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            for privilege in cells[0].replace("`", "").split(", "):
                documented.add((privilege, cells[1]))
    role = security.hq_role("P", "C")
    scope = {"P-*": "`<prefix>-*`", "C": "control index"}
    granted = {(privilege, "cluster") for privilege in role["cluster"]} | {
        (privilege, scope[entry["names"][0]])
        for entry in role["indices"]
        for privilege in entry["privileges"]
    }

    assert documented == granted
