"""The pytest plugin (entry point `pytest11`): a `regbox_cluster` fixture, set by the `regbox` marker,
that brings a cluster up for one test under a name of its own and removes it afterwards; a failed test's
report carries the last log lines of every node."""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest

from . import Cluster, RegboxError

# The log lines of each node a failed test's report carries.
LOG_TAIL = 30


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "regbox(manifest=None, nodes=None, topology='ring', wallet=False, keep=False): the cluster "
        "the regbox_cluster fixture brings up for the test (a manifest file, or nodes in a topology, "
        "each with a wallet if wallet=True)",
    )


def _name(request: pytest.FixtureRequest) -> str:
    """A cluster name no other test has, also under several pytest-xdist workers."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"pt-{worker}-{uuid.uuid4().hex[:8]}"[:40]


@pytest.fixture
def regbox_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The test's own cluster: `@pytest.mark.regbox(manifest="ring4.yaml")` or
    `@pytest.mark.regbox(nodes=4, topology="star", wallet=True)` (default: a ring of 4), brought up
    under a unique name and removed after the test, whatever its outcome, unless the marker says
    `keep=True`."""
    marker = request.node.get_closest_marker("regbox")
    options = dict(marker.kwargs) if marker else {}
    keep = bool(options.pop("keep", False))
    manifest = options.pop("manifest", None)
    nodes = options.pop("nodes", None if manifest else 4)
    topology = options.pop("topology", "ring")
    wallet = bool(options.pop("wallet", False))
    if options:
        raise pytest.UsageError(f"unknown options of the regbox marker: {', '.join(options)}")
    cluster = Cluster.up(
        manifest, nodes=nodes, topology=topology, wallet=wallet, name=_name(request), keep=keep
    )
    request.node._regbox_cluster = cluster
    try:
        yield cluster
    finally:
        if not keep:
            cluster.down()


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
