"""regbox from Python: a cluster of bitcoind nodes in Docker, driven through the `regbox` binary (the
one this package ships), with the names of Bitcoin Core's test framework where one exists."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from . import reports
from .reports import (
    Clocks,
    Connection,
    DiskReport,
    DownReport,
    Exported,
    Faulted,
    HealReport,
    Links,
    Measurement,
    Mined,
    NodeStatus,
    PartitionReport,
    Plan,
    ResetReport,
    Sent,
    SnapshotReport,
    Synced,
    Throttles,
    Waited,
    Wired,
)
from .rpc import JSONRPCException, RpcClient

__all__ = [
    "BadInput",
    "Cluster",
    "Failure",
    "Interrupted",
    "JSONRPCException",
    "Node",
    "RegboxError",
    "Timeout",
    "reports",
    "binary",
]


class RegboxError(Exception):
    """A command regbox refused or could not carry out: `message` is what regbox said, `exit_code`
    its exit code, `command` what was asked."""

    kind = "failure"

    def __init__(self, message: str, exit_code: int, command: Sequence[str]) -> None:
        self.message = message
        self.exit_code = exit_code
        self.command = list(command)
        super().__init__(message)


class BadInput(RegboxError):
    """Bad input (exit code 2): a bad manifest (with its file:line:column), an unknown node, a bad
    argument. Nothing was created or changed."""

    kind = "bad input"


class Failure(RegboxError):
    """A failure at run time (exit code 1): Docker, bitcoind, a condition that did not hold in time."""

    kind = "failure"


class Timeout(Failure):
    """A condition that did not hold in time (exit code 1): `what` names the condition and its
    nodes, `last` what they last reported, as regbox said it."""

    kind = "timeout"

    def __init__(self, message: str, exit_code: int, command: Sequence[str], what: str, last: str) -> None:
        super().__init__(message, exit_code, command)
        self.what = what
        self.last = last


class Interrupted(RegboxError):
    """The command was interrupted (exit code 130)."""

    kind = "interrupted"


def binary() -> str:
    """The `regbox` binary: `REGBOX_BIN`, else the one installed beside this Python (the wheel's), else
    the first on PATH."""
    given = os.environ.get("REGBOX_BIN")
    if given:
        return given
    beside = Path(sys.executable).parent / "regbox"
    if beside.is_file():
        return str(beside)
    found = shutil.which("regbox")
    if found:
        return found
    raise FileNotFoundError("no regbox binary: install the regbox wheel, or set REGBOX_BIN")


def _run(
    args: Sequence[str],
    json_out: bool = True,
    token: str | None = None,
    operator_ca: str | os.PathLike[str] | None = None,
) -> Any:
    """Runs `regbox ARGS [--json]`; its JSON report (or text), or the error it gave as an exception.
    With `token`, the operator's token goes to it as `REGBOX_TOKEN` (never on the command line); with
    `operator_ca`, the CA an https:// operator is trusted by as `REGBOX_OPERATOR_CA`."""
    command = [binary(), *args] + (["--json"] if json_out else [])
    extra = {"REGBOX_TOKEN": token, "REGBOX_OPERATOR_CA": operator_ca}
    extra = {k: os.fspath(v) for k, v in extra.items() if v is not None}
    env = {**os.environ, **extra} if extra else None
    returncode, stdout, stderr = _interruptible(command, env)
    if returncode != 0:
        said = [line for line in stderr.splitlines() if line.strip()]
        errors = [line for line in said if line.startswith("error:")]
        message = (errors[-1][len("error:"):].strip() if errors else "\n".join(said[-5:])) or (
            f"exit code {returncode}"
        )
        timed_out = re.search(r"wait for (.*) within \S+; last seen: (.*)$", message, re.S)
        if returncode == 1 and timed_out:
            raise Timeout(message, 1, command, what=timed_out.group(1), last=timed_out.group(2))
        kind = {2: BadInput, 130: Interrupted}.get(returncode, Failure)
        raise kind(message, returncode, command)
    if not json_out:
        return stdout
    return json.loads(stdout) if stdout.strip() else None


def _interruptible(
    command: Sequence[str], env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Runs `command` to its end: its exit code, stdout and stderr. On Ctrl-C the command gets one
    SIGINT of its own (it runs in a process group of its own, so a terminal's Ctrl-C does not reach
    it twice) and is waited for while it removes what it made, then KeyboardInterrupt goes on; a second
    Ctrl-C makes it exit at once. (`subprocess.run` would kill it 0.25 s after a Ctrl-C, midway.)"""
    # A process group of its own (a new session before Python 3.11, slower to start by ≈ 5 ms).
    group = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **group
    )
    with process:
        try:
            stdout, stderr = process.communicate()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            try:
                process.communicate()
            except KeyboardInterrupt:
                process.send_signal(signal.SIGINT)
                process.wait()
            raise
    return process.returncode, stdout, stderr


def _timeout(seconds: float | None) -> list[str]:
    """`--timeout` in whole seconds (regbox's unit), rounded up; nothing when `None`."""
    return [] if seconds is None else ["--timeout", str(math.ceil(seconds))]


def _unique(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


class Node:
    """One node. Any RPC is a method, as on Core's `TestNode`: `node.getblockcount()`,
    `node.getblock(hash, 2)`; the calls go straight to the node's RPC URL."""

    def __init__(self, cluster: "Cluster", name: str, index: int) -> None:
        self.cluster = cluster
        self.name = name
        self.index = index
        self._client: RpcClient | None = None

    @property
    def url(self) -> Connection:
        """How to reach the node (`regbox url`): its RPC URL with credentials and its P2P address."""
        return self.cluster.url(self.name)

    @property
    def rpc(self) -> RpcClient:
        if self._client is None:
            self._client = RpcClient(self.url.rpc_url)
        return self._client

    def call(self, method: str, *params: Any) -> Any:
        """`method(*params)` on the node: straight to its RPC URL, or through the cluster's operator
        when it has one (the nodes' addresses are the operator's host's, not necessarily this one's)."""
        if self.cluster.operator is None:
            return self.rpc.call(method, *params)
        try:
            return self.cluster.rpc(self.name, method, *params)
        except Failure as e:
            error = _rpc_error(e.message)
            if error is None:
                raise
            raise JSONRPCException(error, method) from None

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *params: self.call(method, *params)

    def __repr__(self) -> str:
        return f"Node({self.cluster.name}/{self.name})"


class Cluster:
    """A running cluster. `Cluster.up(...)` makes one (or brings it to its declared state),
    `Cluster.open(name)` attaches to one; as a context manager it is removed at the end unless
    `keep=True`."""

    def __init__(
        self,
        name: str,
        keep: bool = True,
        operator: str | None = None,
        token: str | None = None,
        operator_ca: str | os.PathLike[str] | None = None,
    ) -> None:
        self.name = name
        self.keep = keep
        self.operator = operator
        self.token = token
        self.operator_ca = operator_ca
        names = [n.name for n in self.status()]
        self.nodes = [Node(self, n, i) for i, n in enumerate(names)]

    # -- making and removing --------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        manifest: str | os.PathLike[str] | None = None,
        *,
        nodes: int | None = None,
        topology: str = "ring",
        wallet: bool = False,
        name: str | None = None,
        keep: bool = False,
        operator: str | None = None,
        token: str | None = None,
        operator_ca: str | os.PathLike[str] | None = None,
    ) -> "Cluster":
        """Brings up the cluster of `manifest`, or of `nodes` nodes in `topology` (each with a wallet
        if `wallet`; a unique name unless `name` is given), and waits until its topology is verified
        by the nodes. With `operator` (an operator's URL, `http://HOST:9181`), the operator makes it
        and every later verb goes to it, with `token` when the operator needs one (else the
        environment's `REGBOX_TOKEN`); an https:// operator is trusted by the CA (PEM file) of
        `operator_ca` (else the environment's `REGBOX_OPERATOR_CA`)."""
        remote = ["--operator", operator] if operator else []
        if manifest is None and nodes is None:
            raise BadInput("give a manifest or a number of nodes", 2, [])
        if manifest is not None and nodes is not None:
            raise BadInput("give a manifest or a number of nodes, not both", 2, [])
        if manifest is None:
            name = name or _unique("py")
            with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
                f.write(f"name: {name}\nnodes: {nodes}\ntopology: {topology}\n")
                if wallet:
                    f.write("defaults:\n  wallet: true\n")
                path = f.name
            try:
                _run([*remote, "up", path], token=token, operator_ca=operator_ca)
            finally:
                os.unlink(path)
        else:
            path = os.fspath(manifest)
            # The manifest's own name, as `check` reads it (bad input is refused here, located).
            name = name or _run(["check", path])[0]["name"]
            _run([*remote, "-c", name, "up", path], token=token, operator_ca=operator_ca)
        return cls(name, keep=keep, operator=operator, token=token, operator_ca=operator_ca)

    @classmethod
    def open(
        cls,
        name: str,
        operator: str | None = None,
        token: str | None = None,
        operator_ca: str | os.PathLike[str] | None = None,
    ) -> "Cluster":
        """Attaches to the cluster `name` as it is (through `operator` when given, with `token` when
        it needs one, trusting an https:// one by the CA of `operator_ca`); it stays up afterwards."""
        return cls(name, keep=True, operator=operator, token=token, operator_ca=operator_ca)

    def down(self) -> DownReport:
        """Removes every container, volume and network of the cluster."""
        return self._report(DownReport, "down")

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.keep:
            self.down()

    # -- the verbs ------------------------------------------------------------------------------

    def _verb(self, *args: str) -> Any:
        remote = ["--operator", self.operator] if self.operator else []
        return _run(
            [*remote, "-c", self.name, *args], token=self.token, operator_ca=self.operator_ca
        )

    def _report(self, kind: Any, *args: str) -> Any:
        return reports.parse(kind, self._verb(*args))

    def status(self) -> list[NodeStatus]:
        """Every node: state, height, best block, peers, segments, link faults."""
        return self._report(list[NodeStatus], "status")

    def url(self, node: str | int) -> Connection:
        """How to reach `node`: its RPC URL with credentials, its P2P address."""
        return self._report(Connection, "url", str(node))

    def mine(self, node: str | int, blocks: int = 1) -> Mined:
        """Mines `blocks` blocks on `node` (Core's `generate`), returning the new height and hashes."""
        return self._report(Mined, "mine", str(node), str(blocks))

    def send(self, frm: str | int, to: str | int, btc: float | str) -> Sent:
        """Sends `btc` from `frm`'s wallet to a new address of `to`'s (both need `wallet: true`)."""
        return self._report(Sent, "send", str(frm), str(to), str(btc))

    def connect_nodes(self, a: str | int, b: str | int) -> Wired:
        """Connects `a` to `b` and waits for the handshake, as Core's `connect_nodes`."""
        return self._report(Wired, "connect", str(a), str(b))

    def disconnect_nodes(self, a: str | int, b: str | int) -> Wired:
        """Disconnects `a` and `b` and waits until neither lists the other."""
        return self._report(Wired, "disconnect", str(a), str(b))

    def partition(
        self,
        groups: Iterable[Iterable[str | int]] | None = None,
        *,
        kind: str | None = None,
        isolate: str | int | None = None,
        seed: int | None = None,
        via: str | None = None,
        mode: str | None = None,
        timeout: float | None = None,
    ) -> PartitionReport:
        """Splits the network into `groups`, or by `kind` (`halves`, `bridge`, `majorities-ring`,
        `random-halves` with an optional `seed`), or cuts off one node (`isolate`); `via` `segments`
        (default) or `firewall`; `mode` `drop` (default), `silent` or `reset`. Returns once the
        nodes hold the expected peer graph."""
        args = ["partition"]
        if groups is not None:
            args += [",".join(str(n) for n in g) for g in groups]
        if kind is not None:
            args.append(f"--{kind}")
        if isolate is not None:
            args += ["--isolate", str(isolate)]
        if seed is not None:
            args += ["--seed", str(seed)]
        if via is not None:
            args += ["--via", via]
        if mode in ("silent", "reset"):
            args.append(f"--{mode}")
        elif mode not in (None, "drop"):
            raise BadInput(f"unknown mode `{mode}`: drop, silent or reset", 2, args)
        return self._report(PartitionReport, *args, *_timeout(timeout))

    def split_network(self) -> PartitionReport:
        """Core's split: the nodes in two halves by index."""
        return self.partition(kind="halves")

    def heal(self, sync: bool = False, timeout: float | None = None) -> PartitionReport | HealReport:
        """Joins every segment again and waits for the declared peer graph; with `sync`, also for
        one tip everywhere, reporting how deep each node reorganised."""
        args = ["heal", *(["--sync"] if sync else []), *_timeout(timeout)]
        return self._report(HealReport if sync else PartitionReport, *args)

    def join_network(self, timeout: float | None = None) -> HealReport:
        """Core's join: every node back together, on one tip."""
        return self.heal(sync=True, timeout=timeout)

    def netem(self, *nodes: str | int, to: Iterable[str | int] | None = None, **shaping: Any) -> Links:
        """Shapes what `nodes` (every node when none) send, to the peers in `to` or to all:
        `delay="100ms"`, `jitter`, `distribution`, `loss="5%"`, `duplicate`, `corrupt`, `reorder`,
        `rate`, `like`."""
        args = ["netem", *(str(n) for n in nodes)]
        if to is not None:
            args += ["--to", ",".join(str(n) for n in to)]
        for key, value in shaping.items():
            if value is True:
                args.append(f"--{key}")
            elif value not in (None, False):
                args += [f"--{key}", str(value)]
        return self._report(Links, *args)

    def cut(self, a: str | int, b: str | int, one_way: bool = False, reset: bool = False) -> Links:
        """Stops packets between `a` and `b`, both ways, or from `a` to `b` only with `one_way`;
        `reset` answers them with a TCP reset instead of dropping them."""
        args = ["cut", "--from", str(a), "--to", str(b)] if one_way else ["cut", str(a), str(b)]
        return self._report(Links, *args, *(["--reset"] if reset else []))

    def clear(self, *nodes: str | int, shaping: bool = True, cuts: bool = True) -> Links:
        """Removes the link faults of `nodes` (every node's when none): shaping, cuts, or both."""
        named = [str(n) for n in nodes]
        links: Links = {}
        if shaping:
            links = self._report(Links, "netem", "--clear", *named)
        if cuts:
            links = self._report(Links, "cut", "--clear", *named)
        return links

    def throttle(self, *nodes: str | int, cpus: float | None = None, memory: str | int | None = None) -> Throttles:
        """Limits the CPU (`cpus=0.05`) and memory (`memory="64m"` or bytes) of `nodes` at run time,
        without a restart; a limit not given keeps what an earlier throttle set."""
        args = ["throttle", *(str(n) for n in nodes)]
        if cpus is not None:
            args += ["--cpus", str(cpus)]
        if memory is not None:
            args += ["--memory", str(memory)]
        return self._report(Throttles, *args)

    def clear_throttle(self, *nodes: str | int) -> Throttles:
        """Gives `nodes` (every node when none) back the resources their manifest declares."""
        return self._report(Throttles, "throttle", "--clear", *(str(n) for n in nodes))

    def fault(self, fault: str, node: str | int) -> Faulted:
        """`stop`, `start`, `restart`, `kill`, `pause` or `unpause` one node."""
        return self._report(Faulted, fault, str(node))

    def stop_node(self, node: str | int) -> Faulted:
        return self.fault("stop", node)

    def start_node(self, node: str | int) -> Faulted:
        """Starts a stopped node and waits until it answers RPC and is wired again."""
        return self.fault("start", node)

    def restart_node(self, node: str | int) -> Faulted:
        return self.fault("restart", node)

    def clock(
        self,
        *nodes: str | int,
        offset: str | int | None = None,
        drift: str | None = None,
        clear: bool = False,
    ) -> Clocks:
        """Sets the wall clock of `nodes` `offset` off the host's (`"+3h"`, `"-90m"`, or seconds) from
        now on, drifting by `drift` from then on (`"+1s/min"`, `"-30s/h"`, `"0"`: not drifting), at run
        time; either left out is the node's own. `clear=True` sets it back to the host's, not drifting
        (every node's when none are named)."""
        if clear == (offset is not None or drift is not None):
            raise BadInput("clock: give offset, drift or both, or clear=True")
        named = [str(n) for n in nodes]
        if clear:
            return self._report(Clocks, "clock", "--clear", *named)
        if isinstance(offset, int):
            offset = f"{offset:+d}s" if offset else "0"
        flags = [f"--offset={offset}"] if offset is not None else []
        flags += [f"--drift={drift}"] if drift is not None else []
        return self._report(Clocks, "clock", *named, *flags)

    def disk(self, node: str | int, fill: bool = True) -> DiskReport:
        """Fills `node`'s bounded data directory (`disk: {size: …}` in the manifest), leaving bitcoind
        less space than it needs (it stops at its next flush), or frees it with `fill=False`."""
        return self._report(DiskReport, "disk", str(node), "--fill" if fill else "--free")

    def reset(self, to: str | None = None, timeout: float = 60) -> ResetReport:
        """Takes the cluster back to its declared state on a fresh chain (or on snapshot `to`),
        restarting each bitcoind in place: the declared topology, no partition, faults or holds.
        Much faster than `down` and `up`: a fresh cluster per test."""
        args = ["reset", "--timeout", str(math.ceil(timeout))]
        return self._report(ResetReport, *args, *(["--to", to] if to else []))

    def snapshot(self, name: str, timeout: float = 60) -> SnapshotReport:
        """Saves every node's chain, wallets and mempool as snapshot `name`, for `reset(to=name)`."""
        return self._report(SnapshotReport, "snapshot", "save", name, "--timeout", str(math.ceil(timeout)))

    def export_snapshot(self, name: str, file: str | os.PathLike) -> Exported:
        """Writes snapshot `name` of every node into `file`, to import into a cluster with the same
        node names (here or on another machine)."""
        return self._report(Exported, "snapshot", "export", name, str(file))

    def import_snapshot(self, file: str | os.PathLike, name: str | None = None) -> Exported:
        """Stores the snapshot in `file` on every node (as `name`, else its own name)."""
        return self._report(Exported, "snapshot", "import", str(file), *(["--as", name] if name else []))

    def wait(self, condition: str, *args: str | int, timeout: float = 60) -> Waited:
        """Waits until a condition holds on the nodes: `ready`, `sync_blocks`, `sync_mempools`
        (`*args`: the nodes, every node when none), `height` (`H`, `NODE`) or `peers` (`N`,
        `NODE`)."""
        return self._report(Waited, "wait", condition, *(str(a) for a in args), *_timeout(timeout))

    def sync_blocks(self, nodes: Iterable[str | int] = (), timeout: float = 60) -> Waited:
        """Waits until `nodes` (every node when none) have one best block, as Core's."""
        return self.wait("sync_blocks", *nodes, timeout=timeout)

    def sync_mempools(self, nodes: Iterable[str | int] = (), timeout: float = 60) -> Waited:
        """Waits until `nodes` (every node when none) hold the same mempool, as Core's."""
        return self.wait("sync_mempools", *nodes, timeout=timeout)

    def sync_all(self, timeout: float = 60) -> Synced:
        """Both: one best block and one mempool on every node."""
        return self._report(Synced, "sync", *_timeout(timeout))

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 60, poll: float = 0.1) -> None:
        """Polls `predicate` until it holds, as Core's `wait_until` does; `Timeout` after `timeout`."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                message = f"wait for the condition within {timeout}s"
                raise Timeout(message, 1, [], what="the condition", last="")
            time.sleep(poll)

    def measure(
        self, kind: str = "block", origin: str | int | None = None, rounds: int = 5, timeout: float | None = None
    ) -> Measurement:
        """Mines blocks (`kind="block"`) or sends transactions (`"tx"`) on `origin`, one round at a
        time, and reports when each node took each one against its hop distance."""
        args = ["measure", "propagation", "--blocks", str(rounds)]
        if kind == "tx":
            args.append("--tx")
        elif kind != "block":
            raise BadInput(f"unknown measurement `{kind}`: block or tx", 2, args)
        if origin is not None:
            args += ["--from", str(origin)]
        return self._report(Measurement, *args, *_timeout(timeout))

    def apply(self, manifest: str | os.PathLike[str], dry_run: bool = False) -> Plan:
        """Brings the cluster to `manifest`'s declared state, changing only what differs, and returns
        the plan it carried out; with `dry_run`, only the plan."""
        return self._report(Plan, "apply", os.fspath(manifest), *(["--dry-run"] if dry_run else []))

    def rpc(self, node: str | int, method: str, *params: Any) -> Any:
        """One RPC through `regbox rpc` (the nodes' own `node.method()` goes straight to the node)."""
        return self._verb("rpc", str(node), method, *(json.dumps(p) for p in params))

    def logs(self, node: str | int, tail: int | None = None) -> str:
        """The node's console output (its last `tail` lines)."""
        args = ["logs", str(node)] + (["--tail", str(tail)] if tail is not None else [])
        return self._verb(*args)["text"]

    def __repr__(self) -> str:
        return f"Cluster({self.name!r}, {len(self.nodes)} nodes)"


def _rpc_error(message: str) -> dict[str, Any] | None:
    """bitcoind's error (`code`, `message`) in what `regbox rpc` said of a call it refused, if any."""
    found = re.search(r"returned error (-?\d+): (.*)$", message, re.S)
    if found is None:
        return None
    return {"code": int(found.group(1)), "message": found.group(2)}
