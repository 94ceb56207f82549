"""Elasticsearch nodes a test may break or lock down, all started with `scripts/es` on ports of
their own and stopped (and their directories removed) when the session ends.

- `es_cluster`: a cluster of three nodes; a test may kill, stop and start nodes by name, and
  finds every node running again when the next test starts.
- `secure_es`: one node with x-pack security and TLS on, and the `elastic` user's password.
- `LocalNode`: a single node of a test's own (the resilience tests stop and restart one).

The ports are picked free below the ephemeral range (20000-32000), so suites run at the same
time on one machine do not meet. `LOGSPACE_ES_CLUSTER_PORT` or `LOGSPACE_ES_SECURE_PORT` make
the fixtures use a cluster or secure node there instead (started if need be, left running if
it already ran): quicker when running a few tests again and again. If a node cannot be had,
the tests that need it fail; they never skip.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "es"
# scripts/es puts a node's transport port this far above its HTTP port.
TRANSPORT_OFFSET = 100
# Compile with C1 only: a node starts on half the CPU, which counts on a busy two-core box;
# what a node does is the same.
JAVA_OPTS = "-XX:TieredStopAtLevel=1"
HEAP = "512m"


class EsScriptError(RuntimeError):
    """`scripts/es` failed; the message holds its standard error."""


def run_es(*args: str, env: dict[str, str], timeout: float = 600) -> str:
    """Run `scripts/es ARGS` with `env` added to this process's environment; its stdout."""
    done = subprocess.run(
        [str(SCRIPT), *args],
        env={"LOGSPACE_ES_JAVA_OPTS": JAVA_OPTS} | dict(os.environ) | env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise EsScriptError(
            f"scripts/es {' '.join(args)} failed ({done.returncode}):\n{done.stderr}{done.stdout}"
        )
    return done.stdout


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(count: int, after: int = 0) -> int:
    """A port p such that p..p+count-1 and the transport ports 100 above them are free.

    Searched from a start that depends on this process's id, so two suites started together
    look in different places; `after` skips blocks already tried."""
    low, high = 20000, 32000 - TRANSPORT_OFFSET - count
    start = max(after + 1, low + (os.getpid() * 37) % (high - low))
    for base in [*range(start, high), *range(low, start)]:
        ports = [*range(base, base + count)]
        ports += [port + TRANSPORT_OFFSET for port in ports]
        if all(_bindable(port) for port in ports):
            return base
    raise EsScriptError(f"no {count} free ports between {low} and {high}")


def _taken(error: EsScriptError) -> bool:
    return "is taken by something else" in str(error)


# -- A single node of a test's own ------------------------------------------------------


@dataclass
class LocalNode:
    """A single node on ports of its own, which a test may stop and start again."""

    port: int
    heap: str = HEAP

    @classmethod
    def started_on_free_ports(cls) -> LocalNode:
        """A new node, started; a port taken meanwhile by someone else is skipped."""
        port = 0
        for _ in range(3):
            port = free_port_block(1, after=port)
            node = cls(port)
            try:
                node.start()
                return node
            except EsScriptError as error:
                with contextlib.suppress(EsScriptError):
                    node.stop()
                    node.purge()
                if not _taken(error):
                    raise
        raise EsScriptError("three free ports were taken before the node could start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def _env(self) -> dict[str, str]:
        return {
            "LOGSPACE_ES_PORT": str(self.port),
            "LOGSPACE_ES_TRANSPORT_PORT": str(self.port + TRANSPORT_OFFSET),
            "LOGSPACE_ES_HEAP": self.heap,
        }

    def start(self) -> str:
        run_es("start", env=self._env)
        return self.url

    def stop(self) -> None:
        run_es("stop", env=self._env)

    def purge(self) -> None:
        """Remove the node's directory (it must be stopped)."""
        run_es("purge", env=self._env)


# -- A cluster of several nodes ---------------------------------------------------------


@dataclass
class Cluster:
    """A cluster started by `scripts/es cluster`; nodes are `node-0` .. `node-<size-1>`."""

    base_port: int
    size: int = 3
    nodes: dict[str, str] = field(default_factory=dict)  # name -> base URL

    @property
    def _env(self) -> dict[str, str]:
        return {
            "LOGSPACE_ES_CLUSTER_PORT": str(self.base_port),
            "LOGSPACE_ES_NODES": str(self.size),
            "LOGSPACE_ES_HEAP": HEAP,
        }

    @property
    def urls(self) -> list[str]:
        return list(self.nodes.values())

    def start(self, name: str | None = None) -> None:
        """Start the whole cluster and wait for green, or (re)start one node and wait until it
        has joined (not for green: the caller waits for what it needs)."""
        output = run_es("cluster", "start", *([name] if name else []), env=self._env)
        for line in output.splitlines():
            node, _, url = line.partition(" ")
            self.nodes[node] = url

    def stop(self, name: str | None = None) -> None:
        """Stop one node (SIGTERM, as an operator would) or the whole cluster."""
        run_es("cluster", "stop", *([name] if name else []), env=self._env)

    def kill(self, name: str) -> None:
        """SIGKILL one node: it leaves without a word, as a crashed machine does."""
        run_es("cluster", "kill", name, env=self._env)

    def purge(self) -> None:
        run_es("cluster", "purge", env=self._env)

    def status(self) -> str:
        """`scripts/es cluster status`: a line per node, then the cluster's health."""
        done = subprocess.run(
            [str(SCRIPT), "cluster", "status"],
            env=os.environ | self._env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stdout

    def running(self) -> list[str]:
        """The names of the nodes whose process runs."""
        return [line.split()[0] for line in self.status().splitlines() if line.endswith(" running")]

    def live_url(self) -> str:
        """The URL of a node that runs (any one)."""
        running = self.running()
        if not running:
            raise EsScriptError("no node of the cluster runs")
        return self.nodes[running[0]]

    def health(self, **params: Any) -> dict[str, Any]:
        """GET /_cluster/health on a running node, e.g. `health(wait_for_status="green")`."""
        params.setdefault("timeout", "120s")
        response = httpx.get(f"{self.live_url()}/_cluster/health", params=params, timeout=180)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def shards(self, index: str) -> list[dict[str, str]]:
        """The copies of `index`'s shards: `shard`, `prirep` (p or r), `state`, `node`."""
        response = httpx.get(
            f"{self.live_url()}/_cat/shards/{index}",
            params={"format": "json", "h": "shard,prirep,state,node"},
            timeout=60,
        )
        response.raise_for_status()
        rows: list[dict[str, str]] = response.json()
        return rows

    def primary_of(self, index: str, shard: int = 0) -> str:
        """The name of the node holding the primary of `index`'s shard `shard`."""
        for row in self.shards(index):
            if row["prirep"] == "p" and int(row["shard"]) == shard and row["state"] == "STARTED":
                return row["node"]
        raise AssertionError(f"no started primary for {index}[{shard}]: {self.shards(index)}")

    def restore(self) -> None:
        """Start every node that does not run, and wait until all have joined."""
        for name in self.nodes:
            if name not in self.running():
                self.start(name)
        self.health(wait_for_nodes=str(self.size))


def _start_cluster(size: int) -> Cluster:
    """A new cluster on free ports; a block taken meanwhile by someone else is skipped."""
    base = 0
    for _ in range(3):
        base = free_port_block(size, after=base)
        cluster = Cluster(base, size)
        try:
            cluster.start()
            return cluster
        except EsScriptError as error:
            _discard(cluster)
            if not _taken(error):
                raise
    raise EsScriptError("three blocks of free ports were taken before the cluster could start")


def _discard(cluster: Cluster) -> None:
    for step in (cluster.stop, cluster.purge):
        with contextlib.suppress(EsScriptError):
            step()


@pytest.fixture(scope="session")
def es_cluster_session() -> Iterator[Cluster]:
    """The session's cluster of three nodes; see `es_cluster`."""
    given = os.environ.get("LOGSPACE_ES_CLUSTER_PORT")
    was_running = False
    try:
        if given:
            cluster = Cluster(int(given))
            was_running = bool(cluster.running())
            cluster.start()
        else:
            cluster = _start_cluster(3)
    except EsScriptError as error:
        pytest.fail(f"could not start an Elasticsearch cluster:\n{error}")
    yield cluster
    if not given:
        _discard(cluster)
    elif not was_running:
        cluster.stop()


@pytest.fixture
def es_cluster(es_cluster_session: Cluster) -> Iterator[Cluster]:
    """A green cluster of three nodes (`node-0`, `node-1`, `node-2`) on loopback, shared by the
    session. A test may kill, stop and start nodes; any node still down afterwards is started
    again. A test removes the indices it made."""
    cluster = es_cluster_session
    try:
        cluster.restore()
    except (EsScriptError, httpx.HTTPError) as error:
        pytest.fail(f"the cluster could not be brought back to {cluster.size} nodes:\n{error}")
    yield cluster
    cluster.restore()


# -- A node with security on ------------------------------------------------------------


@dataclass(frozen=True)
class SecureNode:
    """A node with security and TLS on: its HTTPS URL, the CA that signed its certificate and
    the superuser `elastic`'s password."""

    url: str
    ca: Path
    user: str
    password: str

    @property
    def ca_key(self) -> Path:
        """The CA's private key: `scripts/es` keeps it outside the node's config, in `ca/`."""
        return self.ca.parent.parent.parent / "ca" / "ca.key"

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the node's CA (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca))

    def client(self, auth: Any = "elastic", **options: Any) -> httpx.Client:
        """An HTTPS client trusting the CA; as `elastic` by default, `auth=None` for none, or
        any httpx auth (a `(user, password)` pair) or headers (`headers={"authorization": …}`)."""
        if auth == "elastic":
            auth = (self.user, self.password)
        options.setdefault("timeout", 60)
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), auth=auth, **options)


def _parse_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _secure_node(env: dict[str, str]) -> SecureNode:
    values = _parse_env(run_es("secure", "start", env=env))
    return SecureNode(
        url=values["LOGSPACE_ES_SECURE_URL"],
        ca=Path(values["LOGSPACE_ES_SECURE_CA"]),
        user=values["LOGSPACE_ES_SECURE_USER"],
        password=values["LOGSPACE_ES_SECURE_PASSWORD"],
    )


def _secure_env(port: int) -> dict[str, str]:
    return {
        "LOGSPACE_ES_SECURE_PORT": str(port),
        "LOGSPACE_ES_TRANSPORT_PORT": str(port + TRANSPORT_OFFSET),
        "LOGSPACE_ES_HEAP": HEAP,
    }


def _start_secure() -> tuple[SecureNode, dict[str, str]]:
    """A new secure node on free ports; a port taken meanwhile by someone else is skipped."""
    port = 0
    for _ in range(3):
        port = free_port_block(1, after=port)
        env = _secure_env(port)
        try:
            return _secure_node(env), env
        except EsScriptError as error:
            _discard_secure(env)
            if not _taken(error):
                raise
    raise EsScriptError("three free ports were taken before the secure node could start")


def _discard_secure(env: dict[str, str]) -> None:
    for step in ("stop", "purge"):
        with contextlib.suppress(EsScriptError):
            run_es("secure", step, env=env)


@pytest.fixture(scope="session")
def secure_es() -> Iterator[SecureNode]:
    """A node with x-pack security on (basic licence), TLS on HTTP and transport, and the
    `elastic` superuser; native users, roles and API keys work on it. Shared by the session:
    tests name their users, roles, keys and indices uniquely and remove them."""
    given = os.environ.get("LOGSPACE_ES_SECURE_PORT")
    was_running = False
    try:
        if given:
            env = _secure_env(int(given))
            was_running = run_es_status("secure", env) == 0
            node = _secure_node(env)
        else:
            node, env = _start_secure()
    except EsScriptError as error:
        pytest.fail(f"could not start an Elasticsearch node with security on:\n{error}")
    yield node
    if not given:
        _discard_secure(env)
    elif not was_running:
        run_es("secure", "stop", env=env)


def run_es_status(mode: str, env: dict[str, str]) -> int:
    """The exit status of `scripts/es MODE status`: 0 when running."""
    return subprocess.run(
        [str(SCRIPT), mode, "status"],
        env=os.environ | env,
        capture_output=True,
        timeout=60,
        check=False,
    ).returncode
