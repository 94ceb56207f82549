"""A Kibana space per Logspace space, against Kibana's API as recorded from its documentation
(tests/data/kibana-contract.json; see tests/kibana_contract.py). No Kibana runs here: these
requests were never sent to a real one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from logspace.ops import kibana, kibanaapi, kibanaspaces
from logspace.ops.kibanaapi import Kibana
from logspace.settings import Settings
from logspace.spaces.analysts import SpaceAccess
from logspace.spaces.grants import Grant

from ..kibana_contract import CONTRACT, ContractKibana, check

pytestmark = pytest.mark.anyio

SETTINGS = Settings(space_tokens={"t": Grant("alpha")}, es_username="elastic", es_password="pw")
ALPHA = SpaceAccess("logspace-events", "alpha")
URL = "https://kibana:5601"


def request_of(call: kibanaapi.Call) -> httpx.Request:
    """The request the client sends for `call`."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(call.expected[0], json={} if call.expected[0] != 204 else None)

    async def send() -> None:
        async with Kibana(URL, SETTINGS, transport=httpx.MockTransport(answer)) as client:
            await client.send(call)

    asyncio.run(send())
    (request,) = seen
    return request


# -- the recorded contract ----------------------------------------------------------------


def test_every_operation_names_its_documentation_page() -> None:
    for name, operation in CONTRACT["operations"].items():
        assert operation["doc"] == (
            f"https://www.elastic.co/docs/api/doc/kibana/operation/operation-{name}"
        )
        assert operation["doc"] in CONTRACT["sources"]
    assert "NOT checked against a running Kibana" in CONTRACT["about"]


CALLS = {
    "get-spaces-space-id": kibanaapi.get_space(ALPHA.kibana_space),
    "post-spaces-space": kibanaapi.create_space(kibanaspaces.space_body(ALPHA)),
    "put-spaces-space-id": kibanaapi.update_space(kibanaspaces.space_body(ALPHA)),
    "post-saved-objects-import": kibanaapi.import_objects(
        kibana.load(ALPHA.prefix, space=ALPHA), ALPHA.kibana_space
    ),
    "get-security-role-name": kibanaapi.get_role(ALPHA.kibana_role),
    "put-security-role-name": kibanaapi.put_role(
        ALPHA.kibana_role, kibanaspaces.role_body(ALPHA, "read")
    ),
}


@pytest.mark.parametrize("operation", sorted(CALLS))
def test_every_request_logspace_builds_meets_the_contract(operation: str) -> None:
    """Method, path, kbn-xsrf, query, content type and body, as the documentation says."""
    name, parts = check(request_of(CALLS[operation]))

    assert name == operation
    assert sorted(CALLS) == sorted(CONTRACT["operations"])
    if name == "post-saved-objects-import":
        assert parts["space"] == ALPHA.kibana_space
        assert [(o["type"], o["id"]) for o in parts["body"]] == [
            (o["type"], o["id"]) for o in kibana.load(ALPHA.prefix, space=ALPHA)
        ]


def test_the_default_space_import_meets_the_contract_too() -> None:
    call = kibanaapi.import_objects(kibana.load("logspace-events"))

    name, parts = check(request_of(call))

    assert (name, parts["space"]) == ("post-saved-objects-import", None)
    assert dict(request_of(call).url.params) == {"overwrite": "true"}


def _breaks(request: httpx.Request, *expected: str) -> None:
    with pytest.raises(AssertionError) as broken:
        check(request)
    for text in expected:
        assert text in str(broken.value)


def test_the_contract_catches_what_the_documentation_does_not_allow() -> None:
    """The checker is no rubber stamp: each of these breaks one documented rule."""
    space = kibanaspaces.space_body(ALPHA)
    role = kibanaspaces.role_body(ALPHA, "read")
    post = f"{URL}/api/spaces/space"
    _breaks(httpx.Request("POST", post, json=space), "needs the kbn-xsrf header")
    xsrf = {"kbn-xsrf": "x"}
    _breaks(
        httpx.Request("POST", post, json={**space, "id": "a.b"}, headers=xsrf),
        "'a.b' does not match",
    )
    _breaks(httpx.Request("POST", post, json={**space, "colour": "#fff"}, headers=xsrf), "colour")
    _breaks(httpx.Request("POST", post, json={"id": "x"}, headers=xsrf), "'name' is a required")
    _breaks(
        httpx.Request("PUT", f"{URL}/api/spaces/space/other", json=space, headers=xsrf),
        "id of path and body differ",
    )
    both = {**role, "kibana": [{"base": ["read"], "feature": {"discover": ["all"]}}]}
    role_url = f"{URL}/api/security/role/r"
    _breaks(httpx.Request("PUT", role_url, json=both, headers=xsrf), "breaks the contract")
    odd = {**role, "kibana": [{"base": ["write"], "spaces": ["x"]}]}
    _breaks(httpx.Request("PUT", role_url, json=odd, headers=xsrf), "'write' is not one of")
    _breaks(httpx.Request("PUT", role_url, json={"kibana": []}, headers=xsrf), "elasticsearch")
    imported = f"{URL}/api/saved_objects/_import?overwrite=true&createNewCopies=true"
    _breaks(
        httpx.Request("POST", imported, files={"file": ("f.ndjson", b"{}\n")}, headers=xsrf),
        "together",
    )
    _breaks(httpx.Request("GET", f"{URL}/api/spaces/space/x?force=true"), "query parameter force")
    _breaks(httpx.Request("DELETE", f"{URL}/api/spaces/space/x"), "no documented operation")
    _breaks(httpx.Request("POST", f"{URL}/s/x/api/spaces/space", json=space, headers=xsrf), "/s/")


# -- setting up a space ----------------------------------------------------------------------


async def setup(fake: ContractKibana, access: SpaceAccess = ALPHA, **options: Any) -> list[str]:
    async with Kibana(URL, SETTINGS, transport=fake.transport) as client:
        return await kibanaspaces.setup_space(client, access, **options)


async def test_a_space_gets_its_kibana_space_objects_and_role_once() -> None:
    fake = ContractKibana()

    first = await setup(fake)
    second = await setup(fake)

    space_id = "logspace-events-alpha"
    ids = [o["id"] for o in kibana.load("logspace-events", space=ALPHA)]
    assert first[0] == f"kibana space {space_id}: created"
    assert first[1:-1] == [f"{kind} {id_}: created" for kind, id_ in _typed(ids)]
    assert first[-1] == "kibana role logspace-events-alpha-kibana: created"
    assert second[0] == f"kibana space {space_id}: unchanged"
    assert second[1:-1] == [f"{kind} {id_}: overwritten" for kind, id_ in _typed(ids)]
    assert second[-1] == "kibana role logspace-events-alpha-kibana: unchanged"
    assert fake.requests == [
        "get-spaces-space-id", "post-spaces-space", "post-saved-objects-import",
        "get-security-role-name", "put-security-role-name",
        "get-spaces-space-id", "post-saved-objects-import", "get-security-role-name",
    ]  # fmt: skip


def _typed(ids: list[str]) -> list[tuple[str, str]]:
    types = [o["type"] for o in kibana.load("logspace-events", space=ALPHA)]
    return list(zip(types, ids, strict=True))


async def test_the_space_shows_only_its_own_indices_and_the_role_only_its_space() -> None:
    fake = ContractKibana()

    await setup(fake)

    space = fake.spaces["logspace-events-alpha"]
    assert space["name"] == "Logspace: alpha"
    objects = fake.objects["logspace-events-alpha"]
    (data_view,) = [o for (kind, _), o in objects.items() if kind == "index-pattern"]
    assert data_view["attributes"]["title"] == "logspace-events-alpha-*"
    assert data_view["attributes"]["name"] == "Logspace events (alpha)"
    present = {(kind, id_) for kind, id_ in objects}
    for entry in objects.values():
        assert entry["id"].endswith("-logspace-events-alpha")
        for reference in entry["references"]:
            assert (reference["type"], reference["id"]) in present
    assert fake.objects["default"] == {}
    role = fake.roles["logspace-events-alpha-kibana"]
    assert role["kibana"] == [{"base": ["read"], "spaces": ["logspace-events-alpha"]}]
    assert role["elasticsearch"] == {"cluster": [], "indices": [], "run_as": []}


async def test_two_spaces_share_no_object_id() -> None:
    fake = ContractKibana()
    beta = SpaceAccess("logspace-events", "beta")

    await setup(fake)
    await setup(fake, beta)

    alpha_ids = {id_ for _, id_ in fake.objects["logspace-events-alpha"]}
    beta_ids = {id_ for _, id_ in fake.objects["logspace-events-beta"]}
    assert len(alpha_ids) == len(beta_ids) == 7
    assert not alpha_ids & beta_ids
    assert fake.roles["logspace-events-beta-kibana"]["kibana"][0]["spaces"] == [
        "logspace-events-beta"
    ]


async def test_a_space_renamed_by_hand_is_put_back_keeping_what_an_administrator_chose() -> None:
    fake = ContractKibana()
    await setup(fake)
    fake.spaces["logspace-events-alpha"].update(
        name="Renamed", disabledFeatures=["ml"], color="#aabbcc"
    )

    lines = await setup(fake)

    assert lines[0] == "kibana space logspace-events-alpha: updated"
    assert "put-spaces-space-id" in fake.requests
    space = fake.spaces["logspace-events-alpha"]
    assert (space["name"], space["disabledFeatures"], space["color"]) == (
        "Logspace: alpha",
        ["ml"],
        "#aabbcc",
    )


async def test_a_role_changed_by_hand_is_put_back_and_all_can_be_asked_for() -> None:
    fake = ContractKibana()
    await setup(fake)
    fake.roles["logspace-events-alpha-kibana"]["kibana"][0]["spaces"] = ["*"]

    fixed = await setup(fake)
    widened = await setup(fake, privilege="all")

    assert fixed[-1] == "kibana role logspace-events-alpha-kibana: updated"
    assert fake.roles["logspace-events-alpha-kibana"]["kibana"] == [
        {"base": ["all"], "spaces": ["logspace-events-alpha"]}
    ]
    assert widened[-1] == "kibana role logspace-events-alpha-kibana: updated"


async def test_refused_credentials_are_named_with_the_call() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(403, text="forbidden"))

    async with Kibana(URL, SETTINGS, transport=transport) as client:
        with pytest.raises(kibana.KibanaError) as refused:
            await kibanaspaces.setup_space(client, ALPHA)

    assert str(refused.value).startswith(
        "Kibana refused the credentials (403) to read space logspace-events-alpha; set "
        "LOGSPACE_ES_USERNAME and LOGSPACE_ES_PASSWORD"
    )


async def test_an_unexpected_answer_stops_the_setup_with_kibanas_words() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(404)
        return httpx.Response(400, json={"message": "[request body.id]: must be lower case"})

    async with Kibana(URL, SETTINGS, transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(kibana.KibanaError, match="Kibana answered 400 to create space"):
            await kibanaspaces.setup_space(client, ALPHA)


# -- the command -----------------------------------------------------------------------------


def setup_command(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSPACE_")} | environ
    return subprocess.run(
        [sys.executable, "-m", "logspace", "kibana", "setup", "--url", "http://127.0.0.1:9", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_all_spaces_needs_spaces() -> None:
    done = setup_command("--all-spaces")

    assert done.returncode == 2
    assert done.stderr.startswith("logspace: --all-spaces: No space tokens")


def test_a_space_name_is_checked_before_kibana_is_asked() -> None:
    done = setup_command("--space", "Alpha")

    assert done.returncode == 2
    assert "'Alpha' is not a space name" in done.stderr
