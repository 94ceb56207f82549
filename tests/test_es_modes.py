"""`scripts/es` beyond the single node: a cluster of three nodes that survives losing one, and
a node with security on that lets in only whom it should (the fixtures in tests/clusters.py)."""

from __future__ import annotations

import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .clusters import SCRIPT, Cluster, SecureNode

# -- The script's refusals (no node needed) ----------------------------------------------


def script(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_unknown_command_gets_the_usage() -> None:
    """Exit status 2 and the three modes' commands on stderr."""
    done = script("cluster", "restart")

    assert done.returncode == 2
    assert "scripts/es cluster start [NODE] | stop [NODE] | kill NODE | status | purge" in (
        done.stderr
    )


def test_a_port_that_is_not_one_is_refused() -> None:
    done = script("cluster", "status", LOGSPACE_ES_CLUSTER_PORT="94oo")

    assert done.returncode == 1
    assert "not a port: '94oo'" in done.stderr


def test_a_cluster_never_started_is_stopped_and_has_no_nodes_to_kill(tmp_path: Path) -> None:
    """Status 3 ("stopped") for a port where no cluster was made; killing a node there fails
    and names the nodes a cluster has."""
    where = {"LOGSPACE_ES_CLUSTER_PORT": "9400", "LOGSPACE_ES_DIR": str(tmp_path)}
    status = script("cluster", "status", **where)
    kill = script("cluster", "kill", "node-3", **where)

    assert (status.returncode, status.stdout) == (3, "stopped\n")
    assert kill.returncode == 1
    assert "no node 'node-3' in the cluster on port" in kill.stderr
    assert "its nodes are node-0 to node-2" in kill.stderr


def test_a_node_count_out_of_range_is_refused(tmp_path: Path) -> None:
    done = script("cluster", "kill", "node-0", LOGSPACE_ES_DIR=str(tmp_path), LOGSPACE_ES_NODES="0")

    assert done.returncode == 1
    assert "LOGSPACE_ES_NODES=0: expected a number of nodes from 1 to 20" in done.stderr


# -- The cluster --------------------------------------------------------------------------


@pytest.fixture
def index(es_cluster: Cluster) -> Iterator[str]:
    """A name for this test's index on the cluster; deleted afterwards."""
    name = f"lstest-cluster-{uuid.uuid4().hex[:10]}"
    yield name
    httpx.delete(f"{es_cluster.live_url()}/{name}", timeout=60)


def create_index(url: str, name: str, shards: int, replicas: int) -> None:
    response = httpx.put(
        f"{url}/{name}",
        json={
            "settings": {
                "number_of_shards": shards,
                "number_of_replicas": replicas,
                # A lost copy stays unassigned (the cluster yellow) until its node is back.
                "index.unassigned.node_left.delayed_timeout": "10m",
            }
        },
        timeout=60,
    )
    response.raise_for_status()


def write(url: str, name: str, count: int) -> None:
    lines = "".join(f'{{"create":{{"_id":"{i}"}}}}\n{{"n":{i}}}\n' for i in range(count)).encode()
    response = httpx.post(
        f"{url}/{name}/_bulk",
        content=lines,
        params={"refresh": "wait_for"},
        headers={"content-type": "application/x-ndjson"},
        timeout=60,
    )
    response.raise_for_status()
    assert response.json()["errors"] is False


def count(url: str, name: str) -> int:
    response = httpx.get(f"{url}/{name}/_count", timeout=60)
    response.raise_for_status()
    number: int = response.json()["count"]
    return number


def test_the_cluster_is_green_with_three_nodes_each_answering_on_its_own_port(
    es_cluster: Cluster,
) -> None:
    """Every node's URL answers for the same cluster, which has node-0, node-1 and node-2."""
    assert sorted(es_cluster.nodes) == ["node-0", "node-1", "node-2"]
    assert len(set(es_cluster.urls)) == 3
    seen = []
    for url in es_cluster.urls:
        health = httpx.get(f"{url}/_cluster/health", timeout=30).json()
        seen.append((health["cluster_name"], health["status"], health["number_of_nodes"]))
        names = httpx.get(f"{url}/_cat/nodes", params={"h": "name"}, timeout=30).text.split()
        assert sorted(names) == ["node-0", "node-1", "node-2"]
    assert seen == [(f"logspace-cluster-{es_cluster.base_port}", "green", 3)] * 3


def test_a_write_with_one_replica_goes_green_with_the_copies_on_different_nodes(
    es_cluster: Cluster, index: str
) -> None:
    url = es_cluster.urls[0]
    create_index(url, index, shards=3, replicas=1)
    write(url, index, 300)

    health = es_cluster.health(index=index, wait_for_status="green")
    copies = es_cluster.shards(index)

    assert health["status"] == "green"
    assert len(copies) == 6
    assert {row["state"] for row in copies} == {"STARTED"}
    for shard in "012":
        holders = [row["node"] for row in copies if row["shard"] == shard]
        assert len(set(holders)) == 2, copies
    assert {count(node, index) for node in es_cluster.urls} == {300}


def test_killing_the_node_with_the_primary_leaves_a_yellow_cluster_and_its_restart_a_green_one(
    es_cluster: Cluster, index: str
) -> None:
    """kill -9 of the node holding the primary: the other two answer (yellow, the replica is
    promoted, nothing lost); started again by name, the node rejoins and the cluster is green."""
    create_index(es_cluster.urls[0], index, shards=1, replicas=1)
    write(es_cluster.urls[0], index, 100)
    es_cluster.health(index=index, wait_for_status="green")
    victim = es_cluster.primary_of(index)

    es_cluster.kill(victim)
    running = es_cluster.running()
    without = es_cluster.health(wait_for_nodes="2", wait_for_status="yellow")
    survivor = es_cluster.primary_of(index)
    counted = count(es_cluster.live_url(), index)

    es_cluster.start(victim)
    back = es_cluster.health(wait_for_nodes="3", wait_for_status="green")

    assert victim not in running
    assert len(running) == 2
    assert (without["status"], without["number_of_nodes"]) == ("yellow", 2)
    assert survivor != victim
    assert counted == 100
    assert (back["status"], back["number_of_nodes"]) == ("green", 3)
    assert sorted(row["node"] for row in es_cluster.shards(index)) == sorted([victim, survivor])
    assert count(es_cluster.nodes[victim], index) == 100


def test_a_node_stopped_by_name_is_reported_stopped(es_cluster: Cluster) -> None:
    """`scripts/es cluster stop NODE` stops that node only; `status` says so, and exits 1."""
    es_cluster.stop("node-2")
    status = es_cluster.status()
    es_cluster.health(wait_for_nodes="2")

    assert es_cluster.running() == ["node-0", "node-1"]
    assert f"node-2 {es_cluster.nodes['node-2']} stopped" in status.splitlines()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{es_cluster.nodes['node-2']}/_cluster/health", timeout=5)


# -- The node with security on --------------------------------------------------------------


def test_an_anonymous_request_is_refused_with_401(secure_es: SecureNode) -> None:
    with secure_es.client(auth=None) as anonymous:
        response = anonymous.get("/_cluster/health")

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "security_exception"
    assert "Basic" in response.headers["www-authenticate"]


def test_elastic_gets_in_over_https_trusting_the_ca(secure_es: SecureNode) -> None:
    with secure_es.client() as elastic:
        me = elastic.get("/_security/_authenticate")
        health = elastic.get("/_cluster/health")

    assert secure_es.url.startswith("https://127.0.0.1:")
    assert me.status_code == 200
    assert (me.json()["username"], me.json()["roles"]) == ("elastic", ["superuser"])
    assert health.status_code == 200


def test_a_wrong_password_is_refused_with_401(secure_es: SecureNode) -> None:
    with secure_es.client(auth=("elastic", "not-the-password")) as wrong:
        assert wrong.get("/_cluster/health").status_code == 401


def test_plain_http_gets_no_answer(secure_es: SecureNode) -> None:
    """The HTTP port speaks TLS only: a plain request is dropped, whatever its credentials."""
    plain = secure_es.url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{plain}/_cluster/health", auth=(secure_es.user, secure_es.password), timeout=30)


def test_a_client_that_does_not_trust_the_ca_cannot_connect(secure_es: SecureNode) -> None:
    """The node's certificate is signed by the CA made for it, which no system store holds."""
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(
            f"{secure_es.url}/_cluster/health",
            auth=(secure_es.user, secure_es.password),
            verify=ssl.create_default_context(),
            timeout=30,
        )


@pytest.fixture
def alpha_and_beta(secure_es: SecureNode) -> Iterator[tuple[str, str, str]]:
    """Indices `<tag>-alpha-x` and `<tag>-beta-x` with a document each, and the tag; they and
    the users, roles and API keys named after the tag are removed afterwards."""
    tag = f"lstest-{uuid.uuid4().hex[:10]}"
    with secure_es.client() as elastic:
        for name in ("alpha", "beta"):
            elastic.put(
                f"/{tag}-{name}-x/_doc/1", json={"name": name}, params={"refresh": "true"}
            ).raise_for_status()
        yield tag, f"{tag}-alpha-x", f"{tag}-beta-x"
        elastic.delete(f"/{tag}-*")
        elastic.delete(f"/_security/user/{tag}-reader")
        elastic.delete(f"/_security/role/{tag}-alpha-reader")
        elastic.request("DELETE", "/_security/api_key", json={"name": f"{tag}-*"})


def read_only(pattern: str) -> dict[str, Any]:
    return {"indices": [{"names": [pattern], "privileges": ["read"]}]}


def test_an_api_key_limited_to_alpha_reads_alpha_and_gets_403_on_beta(
    secure_es: SecureNode, alpha_and_beta: tuple[str, str, str]
) -> None:
    """An API key made by `elastic` with a role descriptor for `<tag>-alpha-*` only."""
    tag, alpha, beta = alpha_and_beta
    with secure_es.client() as elastic:
        made = elastic.post(
            "/_security/api_key",
            json={
                "name": f"{tag}-key",
                "expiration": "1h",
                "role_descriptors": {"alpha-reader": read_only(f"{tag}-alpha-*")},
            },
        )
    assert made.status_code == 200, made.text
    key = {"authorization": f"ApiKey {made.json()['encoded']}"}

    with secure_es.client(auth=None, headers=key) as client:
        allowed = client.get(f"/{alpha}/_search")
        refused = client.get(f"/{beta}/_search")
        privileges = client.post(
            "/_security/user/_has_privileges",
            json={"index": [{"names": [alpha, beta], "privileges": ["read", "write"]}]},
        )

    assert allowed.status_code == 200
    assert [hit["_source"] for hit in allowed.json()["hits"]["hits"]] == [{"name": "alpha"}]
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "security_exception"
    assert privileges.status_code == 200
    assert privileges.json()["index"] == {
        alpha: {"read": True, "write": False},
        beta: {"read": False, "write": False},
    }


def test_a_native_user_with_a_role_reads_only_what_the_role_grants(
    secure_es: SecureNode, alpha_and_beta: tuple[str, str, str]
) -> None:
    """A role and a user made through the security API (stored in the `.security` index)."""
    tag, alpha, beta = alpha_and_beta
    user, password = f"{tag}-reader", "reader-password-1"
    with secure_es.client() as elastic:
        role = elastic.put(f"/_security/role/{tag}-alpha-reader", json=read_only(f"{tag}-alpha-*"))
        made = elastic.put(
            f"/_security/user/{user}",
            json={"password": password, "roles": [f"{tag}-alpha-reader"], "email": "r@example.com"},
        )
    assert (role.status_code, made.status_code) == (200, 200), (role.text, made.text)

    with secure_es.client(auth=(user, password)) as reader:
        allowed = reader.get(f"/{alpha}/_count")
        refused = reader.get(f"/{beta}/_count")
    with secure_es.client(auth=(user, "wrong-password")) as wrong:
        unknown = wrong.get(f"/{alpha}/_count")

    assert (allowed.status_code, allowed.json()["count"]) == (200, 1)
    assert refused.status_code == 403
    assert unknown.status_code == 401
