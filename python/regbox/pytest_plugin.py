"""The pytest plugin (entry point `pytest11`): a `regbox_cluster` fixture, set by the `regbox` marker,
that gives each test a fresh cluster under a name of its own: the first test of a kind brings it up,
later tests that ask for the same cluster get it back reset in place (a fresh chain, the declared
topology, no faults: `Cluster.reset`), and the clusters go when the session ends. A failed test's
report carries the last log lines of every node."""

from __future__ import annotations

import os
import uuid
from typing import Any, Callable, Iterator

import pytest

from . import Cluster, RegboxError

# The log lines of each node a failed test's report carries.
LOG_TAIL = 30


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "regbox(manifest=None, nodes=None, topology='ring', wallet=False, keep=False, fresh=False): "
        "the cluster the regbox_cluster fixture gives the test (a manifest file, or nodes in a "
        "topology, each with a wallet if wallet=True), reset from an earlier test's when one asked "
        "the same (fresh=True: a new one; keep=True: a new one, left running)",
    )


def _name(request: pytest.FixtureRequest) -> str:
    """A cluster name no other test has, also under several pytest-xdist workers."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"pt-{worker}-{uuid.uuid4().hex[:8]}"[:40]


@pytest.fixture(scope="session")
def _regbox_pool() -> Iterator[dict[tuple, Cluster]]:
    """Clusters between tests, by what the marker asked for: the next test asking the same gets one
    reset. A session fixture, so that its teardown comes after every test's, also on Ctrl-C."""
    pool: dict[tuple, Cluster] = {}
    try:
        yield pool
    finally:
        while pool:
            _down(pool.popitem()[1])


def _reused(pool: dict[tuple, Cluster], key: tuple, make: Callable[[], Cluster]) -> Cluster:
    """An earlier test's cluster of `key`, reset in place; a new one when there is none or the reset
    fails."""
    cluster = pool.pop(key, None)
    if cluster is not None:
        try:
            cluster.reset()
            return cluster
        except RegboxError:
            _down(cluster)
    return make()


def _down(cluster: Cluster) -> None:
    try:
        cluster.down()
    except RegboxError:
        pass


@pytest.fixture
def regbox_cluster(
    request: pytest.FixtureRequest, _regbox_pool: dict[tuple, Cluster]
) -> Iterator[Cluster]:
    """The test's own cluster on a fresh chain: `@pytest.mark.regbox(manifest="ring4.yaml")` or
    `@pytest.mark.regbox(nodes=4, topology="star", wallet=True)` (default: a ring of 4). The first
    test asking for it brings it up under a unique name; a later test asking the same gets it reset
    (`Cluster.reset`: every node on a fresh chain, the declared topology, no partition or fault), much
    faster than a new one; the session's end removes it. `fresh=True` asks for a new cluster, removed
    after the test; `keep=True` for a new one left running."""
    marker = request.node.get_closest_marker("regbox")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    keep = bool(options.pop("keep", False))
    fresh = bool(options.pop("fresh", False)) or keep
    manifest = options.pop("manifest", None)
    nodes = options.pop("nodes", None if manifest else 4)
    topology = options.pop("topology", "ring")
    wallet = bool(options.pop("wallet", False))
    if options:
        raise pytest.UsageError(f"unknown options of the regbox marker: {', '.join(options)}")

    def make() -> Cluster:
        return Cluster.up(
            manifest, nodes=nodes, topology=topology, wallet=wallet, name=_name(request), keep=keep
        )

    key = (str(os.path.abspath(manifest)) if manifest else None, nodes, topology, wallet)
    cluster = make() if fresh else _reused(_regbox_pool, key, make)
    request.node._regbox_cluster = cluster
    try:
        yield cluster
    finally:
        if keep:
            pass
        elif fresh or key in _regbox_pool:
            _down(cluster)
        else:
            _regbox_pool[key] = cluster


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    cluster = getattr(item, "_regbox_cluster", None)
    if cluster is None or report.when != "call" or not report.failed:
        return
    for node in cluster.nodes:
        try:
            text = cluster.logs(node.name, tail=LOG_TAIL)
        except RegboxError as e:
            text = f"(no log: {e.message})"
        report.sections.append((f"regbox {cluster.name} {node.name}: last {LOG_TAIL} log lines", text))
