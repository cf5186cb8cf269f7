"""What each verb answers, as typed objects: one dataclass per report of regbox's vocabulary
(`core::verb::Report` in the crate), read from the same JSON the CLI prints with `--json` and the
operator replies with. Fields a newer regbox adds are ignored unless `strict`."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

STRICT = False
"""Whether `parse` refuses fields a report class lacks (the tests set it, so that a field the crate
adds and this package misses fails them)."""


def parse(kind: Any, data: Any, strict: bool | None = None) -> Any:
    """`data` (parsed JSON) as `kind`: a report class, `list[...]`, `dict[str, ...]`, `X | None` or a
    plain type. A missing required field is a `TypeError`; with `strict` (default `STRICT`), so is a
    field `kind` lacks."""
    strict = STRICT if strict is None else strict
    if dataclasses.is_dataclass(kind):
        if not isinstance(data, dict):
            raise TypeError(f"{kind.__name__}: expected an object, got {data!r}")
        known = _fields(kind)
        if strict and not set(data) <= set(known):
            raise TypeError(f"{kind.__name__} has no field for {sorted(set(data) - set(known))}")
        return kind(
            **{name: parse(hint, data[key], strict) for key, (name, hint) in known.items() if key in data}
        )
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is list:
        return [parse(args[0], item, strict) for item in data]
    if origin is dict:
        return {key: parse(args[1], value, strict) for key, value in data.items()}
    if origin in (Union, types.UnionType):
        if data is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return parse(inner, data, strict)
    return data


@functools.lru_cache(maxsize=None)
def _fields(kind: type) -> dict[str, tuple[str, Any]]:
    """A report class's fields by JSON key: (attribute, type)."""
    hints = typing.get_type_hints(kind)
    return {f.metadata.get("json", f.name): (f.name, hints[f.name]) for f in dataclasses.fields(kind)}


@dataclass(frozen=True)
class NodeStatus:
    """One node as `status` reports it (`apply` and `up` report every node so)."""

    index: int
    name: str
    image: str
    state: str
    control_ip: str
    data_ip: str
    height: int | None
    best_hash: str | None
    peers: list[str]
    segments: list[str]
    error: str | None
    links: str
    host: str | None = None
    clock: int | None = None
    """The node's clock offset from the host's now, in seconds, while it is not the host's."""
    drift: str | None = None
    """How the node's clock drifts from the host's (`"+1s/min"`), while it does."""
    overlay_encrypted: bool | None = None
    throttle: Throttle | None = None


@dataclass(frozen=True)
class Throttle:
    """The limits `throttle` put on a node: CPUs, memory in bytes (a limit not set is `None`)."""

    cpus: float | None = None
    memory: int | None = None
    io_rate: int | None = None


Throttles = dict[str, Throttle]
"""`throttle`: every throttled node's limits afterwards, by node (a node without one is absent)."""


@dataclass(frozen=True)
class Connection:
    """How to reach a node (`url`)."""

    node: str
    rpc_url: str
    rpc_user: str
    rpc_password: str
    rpc_address: str
    p2p_address: str
    rpc_proxy: str | None = None
    rpc_proxy_auth: str | None = None
    overlay_encrypted: bool | None = None


@dataclass(frozen=True)
class Mined:
    node: str
    height: int
    blocks: list[str]


@dataclass(frozen=True)
class Sent:
    from_: str = field(metadata={"json": "from"})
    to: str
    amount_sat: int
    txid: str


@dataclass(frozen=True)
class Wired:
    """`connect_nodes` and `disconnect_nodes`: the two ends and whether they are connected now."""

    a: str
    b: str
    connected: bool


@dataclass(frozen=True)
class Segment:
    id: int
    network: str
    subnet: str
    members: list[str]


@dataclass(frozen=True)
class PartitionReport:
    """`partition`, and `heal` without sync: the data plane and the peer graph the nodes hold."""

    mode: str
    via: str
    segments: list[Segment]
    graph: list[str]
    seed: int | None = None


@dataclass(frozen=True)
class NodeReorg:
    node: str
    old_tip: str
    old_height: int
    reorg_depth: int


@dataclass(frozen=True)
class HealReport:
    """`heal(sync=True)` and `join_network`: the common tip and how deep each node reorganised."""

    tip: str
    height: int
    nodes: list[NodeReorg]

    def reorg_depths(self) -> dict[str, int]:
        return {n.node: n.reorg_depth for n in self.nodes}


@dataclass(frozen=True)
class Shaping:
    delay_us: int
    jitter_us: int
    distribution: str
    loss: float
    duplicate: float
    corrupt: float
    reorder: float
    rate_bps: int | None = None


@dataclass(frozen=True)
class NodeLinks:
    """One node's link faults: cuts by peer (`drop`, `reset`), its shaping, shaping by peer."""

    cuts: dict[str, str]
    shaping: Shaping | None
    links: dict[str, Shaping]


Links = dict[str, NodeLinks]
"""`netem`, `cut` and `clear`: every node's link faults afterwards, by node (a node without any is
absent)."""


@dataclass(frozen=True)
class Faulted:
    node: str
    fault: str


@dataclass(frozen=True)
class DiskReport:
    """`disk`: the node's bounded data directory is now full (`full`) or freed."""

    node: str
    full: bool


@dataclass(frozen=True)
class NodeSnapshot:
    """One node's chain in a reset or a snapshot."""

    node: str
    height: int
    best_hash: str


@dataclass(frozen=True)
class ResetReport:
    """`reset`: every node on a fresh chain (or on snapshot `to`), wired as declared; `remade` were
    made again (their image has no init, or their container was missing or outdated), `cleared` says
    what was taken away on the way."""

    nodes: list[NodeSnapshot]
    remade: list[str]
    cleared: list[str]
    to: str | None = None


@dataclass(frozen=True)
class SnapshotReport:
    """`snapshot save`: each node's chain as the snapshot keeps it."""

    name: str
    nodes: list[NodeSnapshot]


@dataclass(frozen=True)
class Exported:
    """`snapshot export` and `import`: the snapshot's name, the cluster it was taken of, its nodes
    and the file's size."""

    name: str
    cluster: str
    nodes: list[str]
    bytes: int = 0


@dataclass(frozen=True)
class NodeClock:
    """One node's clock: its offset from the host's, in seconds (0: the host's clock), and how it
    drifts from there (`"+1s/min"`), when it does."""

    node: str
    offset: int
    drift: str | None = None


@dataclass(frozen=True)
class Clocks:
    """`clock`: the clocks it set."""

    nodes: list[NodeClock]


@dataclass(frozen=True)
class Waited:
    """`wait`: the condition, and what was met: `"yes"`, `{"tip": HASH}` or `{"mempool": N}`."""

    until: str
    met: Any


@dataclass(frozen=True)
class Synced:
    best_hash: str
    mempool_size: int
    nodes: int


@dataclass(frozen=True)
class Arrival:
    node: str
    hops: int | None
    ms: float | None
    header_ms: float | None = None


@dataclass(frozen=True)
class Round:
    round: int
    id: str
    arrivals: list[Arrival]
    height: int | None = None


@dataclass(frozen=True)
class HopStat:
    hops: int
    samples: int
    mean_ms: float | None = None
    max_ms: float | None = None
    mean_header_ms: float | None = None


@dataclass(frozen=True)
class Summary:
    rounds: int
    samples: int
    missing: int
    p50: float | None
    p90: float | None
    p95: float | None
    max: float | None
    per_hop: list[HopStat]


@dataclass(frozen=True)
class Prepared:
    blocks_mined: int
    split_txid: str | None = None


@dataclass(frozen=True)
class Measurement:
    """`measure`: each round's arrivals at every node, and their summary."""

    kind: str
    origin: str
    unreachable: list[str]
    rounds: list[Round]
    summary: Summary
    prepared: Prepared | None = None


@dataclass(frozen=True)
class LinkChange:
    node: str
    before: str
    after: str


@dataclass(frozen=True)
class DiffLine:
    sign: str
    what: str
    detail: str


@dataclass(frozen=True)
class Plan:
    """`apply(dry_run=True)`: what `apply` would change, nodes by name."""

    cluster: str
    exists: bool
    create: list[str]
    recreate: list[str]
    why: dict[str, list[str]]
    remove: list[str]
    start: list[str]
    unpause: list[str]
    release: list[str]
    heal: list[str]
    connect: list[str]
    disconnect: list[str]
    links: list[LinkChange]
    duplicate_networks: list[str]
    images: dict[str, str]
    diff: list[DiffLine]


@dataclass(frozen=True)
class DownReport:
    cluster: str
    containers: int
    volumes: int
    networks: int
    halted: int = 0
