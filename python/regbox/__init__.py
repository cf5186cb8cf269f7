"""regbox from Python: a cluster of bitcoind nodes in Docker, driven through the `regbox` binary (the
one this package ships), with the names of Bitcoin Core's test framework where one exists."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .rpc import JSONRPCException, RpcClient

__all__ = [
    "BadInput",
    "Cluster",
    "Failure",
    "Interrupted",
    "JSONRPCException",
    "Node",
    "RegboxError",
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


def _run(args: Sequence[str], json_out: bool = True) -> Any:
    """Runs `regbox ARGS [--json]`; its JSON report (or text), or the error it gave as an exception."""
    command = [binary(), *args] + (["--json"] if json_out else [])
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.strip()]
        errors = [line for line in said if line.startswith("error:")]
        message = (errors[-1][len("error:"):].strip() if errors else "\n".join(said[-5:])) or (
            f"exit code {done.returncode}"
        )
        kind = {2: BadInput, 130: Interrupted}.get(done.returncode, Failure)
        raise kind(message, done.returncode, command)
    if not json_out:
        return done.stdout
    return json.loads(done.stdout) if done.stdout.strip() else None


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
    def url(self) -> dict[str, Any]:
        """How to reach the node (`regbox url`): its RPC URL with credentials and its P2P address."""
        return _run(["-c", self.cluster.name, "url", self.name])

    @property
    def rpc(self) -> RpcClient:
        if self._client is None:
            self._client = RpcClient(self.url["rpc_url"])
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

    def __init__(self, name: str, keep: bool = True, operator: str | None = None) -> None:
        self.name = name
        self.keep = keep
        self.operator = operator
        names = [n["name"] for n in self.status()]
        self.nodes = [Node(self, n, i) for i, n in enumerate(names)]

    # -- making and removing --------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        manifest: str | os.PathLike[str] | None = None,
        *,
        nodes: int | None = None,
        topology: str = "ring",
        name: str | None = None,
        keep: bool = False,
        operator: str | None = None,
    ) -> "Cluster":
        """Brings up the cluster of `manifest`, or of `nodes` nodes in `topology` (a unique name unless
        `name` is given), and waits until its topology is verified by the nodes. With `operator` (an
        operator's URL, `http://HOST:9181`), the operator makes it and every later verb goes to it."""
        remote = ["--operator", operator] if operator else []
        if manifest is None and nodes is None:
            raise BadInput("give a manifest or a number of nodes", 2, [])
        if manifest is not None and nodes is not None:
            raise BadInput("give a manifest or a number of nodes, not both", 2, [])
        if manifest is None:
            name = name or _unique("py")
            with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
                f.write(f"name: {name}\nnodes: {nodes}\ntopology: {topology}\n")
                path = f.name
            try:
                _run([*remote, "up", path])
            finally:
                os.unlink(path)
        else:
            path = os.fspath(manifest)
            # The manifest's own name, as `check` reads it (bad input is refused here, located).
            name = name or _run(["check", path])[0]["name"]
            _run([*remote, "-c", name, "up", path])
        return cls(name, keep=keep, operator=operator)

    @classmethod
    def open(cls, name: str, operator: str | None = None) -> "Cluster":
        """Attaches to the cluster `name` as it is (through `operator` when given); it stays up
        afterwards."""
        return cls(name, keep=True, operator=operator)

    def down(self) -> dict[str, Any]:
        """Removes every container, volume and network of the cluster."""
        return self._verb("down")

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.keep:
            self.down()

    # -- the verbs ------------------------------------------------------------------------------

    def _verb(self, *args: str) -> Any:
        remote = ["--operator", self.operator] if self.operator else []
        return _run([*remote, "-c", self.name, *args])

    def status(self) -> list[dict[str, Any]]:
        return self._verb("status")

    def mine(self, node: str | int, blocks: int = 1) -> dict[str, Any]:
        return self._verb("mine", str(node), str(blocks))

    def send(self, frm: str | int, to: str | int, btc: float | str) -> dict[str, Any]:
        return self._verb("send", str(frm), str(to), str(btc))

    def connect_nodes(self, a: str | int, b: str | int) -> dict[str, Any]:
        return self._verb("connect", str(a), str(b))

    def disconnect_nodes(self, a: str | int, b: str | int) -> dict[str, Any]:
        return self._verb("disconnect", str(a), str(b))

    def partition(
        self,
        groups: Iterable[Iterable[str | int]] | None = None,
        *,
        kind: str | None = None,
        via: str | None = None,
        mode: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Splits the network: explicit `groups`, or `kind` (`halves`, `bridge`, `majorities-ring`,
        `random-halves`); `via` `segments` (default) or `firewall`; `mode` `drop` (default), `silent`,
        `reset`."""
        args = ["partition"]
        if groups is not None:
            args += [",".join(str(n) for n in g) for g in groups]
        if kind is not None:
            args.append(f"--{kind}")
        if via is not None:
            args += ["--via", via]
        if mode in ("silent", "reset"):
            args.append(f"--{mode}")
        elif mode not in (None, "drop"):
            raise BadInput(f"unknown mode `{mode}`: drop, silent or reset", 2, args)
        if timeout is not None:
            args += ["--timeout", str(timeout)]
        return self._verb(*args)

    def split_network(self) -> dict[str, Any]:
        """Core's split: the nodes in two halves by index."""
        return self.partition(kind="halves")

    def heal(self, sync: bool = False, timeout: float | None = None) -> dict[str, Any]:
        args = ["heal"] + (["--sync"] if sync else [])
        if timeout is not None:
            args += ["--timeout", str(timeout)]
        return self._verb(*args)

    def join_network(self) -> dict[str, Any]:
        """Core's join: every node back together, on one tip."""
        return self.heal(sync=True)

    def netem(self, *nodes: str | int, to: Iterable[str | int] | None = None, **shaping: Any) -> Any:
        """Shapes what `nodes` (every node when none) send: `delay="100ms"`, `jitter`, `distribution`,
        `loss="5%"`, `duplicate`, `corrupt`, `reorder`, `rate`, `like`; `clear=True` removes it."""
        args = ["netem", *(str(n) for n in nodes)]
        if to is not None:
            args += ["--to", ",".join(str(n) for n in to)]
        for key, value in shaping.items():
            if value is True:
                args.append(f"--{key}")
            elif value not in (None, False):
                args += [f"--{key}", str(value)]
        return self._verb(*args)

    def cut(self, a: str | int, b: str | int, one_way: bool = False, reset: bool = False) -> Any:
        """Stops packets between `a` and `b`, both ways, or from `a` to `b` only with `one_way`."""
        args = ["cut", "--from", str(a), "--to", str(b)] if one_way else ["cut", str(a), str(b)]
        return self._verb(*(args + (["--reset"] if reset else [])))

    def fault(self, fault: str, node: str | int) -> dict[str, Any]:
        """`stop`, `start`, `restart`, `kill`, `pause` or `unpause` one node."""
        return self._verb(fault, str(node))

    def sync_blocks(self, nodes: Iterable[str | int] = (), timeout: float = 60) -> Any:
        return self._verb("wait", "sync_blocks", *(str(n) for n in nodes), "--timeout", str(timeout))

    def sync_mempools(self, nodes: Iterable[str | int] = (), timeout: float = 60) -> Any:
        return self._verb("wait", "sync_mempools", *(str(n) for n in nodes), "--timeout", str(timeout))

    def sync_all(self, timeout: float = 60) -> Any:
        return self._verb("sync", "--timeout", str(timeout))

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 60, poll: float = 0.1) -> None:
        """Polls `predicate` until it holds, as Core's `wait_until` does; a `Failure` after `timeout`."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise Failure(f"the condition did not hold within {timeout} s", 1, [])
            time.sleep(poll)

    def rpc(self, node: str | int, method: str, *params: Any) -> Any:
        """One RPC through `regbox rpc` (the nodes' own `node.method()` goes straight to the node)."""
        return self._verb("rpc", str(node), method, *(json.dumps(p) for p in params))

    def logs(self, node: str | int, tail: int | None = None) -> str:
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
