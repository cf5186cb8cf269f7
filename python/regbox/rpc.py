"""A node's JSON-RPC, straight to its RPC URL: one kept-alive connection, reopened when bitcoind has
closed it (it drops a connection idle for 30 s), and bitcoind's errors as JSONRPCException."""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import socket
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["JSONRPCException", "RpcClient"]

# What a connection the other end closed while it sat idle looks like on the next request.
_CLOSED = (
    http.client.RemoteDisconnected,
    http.client.CannotSendRequest,
    http.client.BadStatusLine,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)


class JSONRPCException(Exception):
    """An error bitcoind answered with, as Bitcoin Core's test framework names it: `error` holds its
    `code` and `message`."""

    def __init__(self, error: dict[str, Any], method: str = "") -> None:
        self.error = error
        self.code = error.get("code")
        self.message = error.get("message", "")
        self.method = method
        super().__init__(f"{method}: {self.message} ({self.code})")


class RpcClient:
    """Calls one node's RPC at `url` (`http://user:password@host:port/`)."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http URL of a node's RPC: {parts.scheme}://{parts.hostname}")
        self.host, self.port = parts.hostname, parts.port or 80
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._auth = f"Basic {token}"
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _exchange(self, body: bytes) -> tuple[int, bytes]:
        conn = self._connection()
        conn.request(
            "POST",
            "/",
            body=body,
            headers={"Authorization": self._auth, "Content-Type": "application/json"},
        )
        reply = conn.getresponse()
        return reply.status, reply.read()

    def call(self, method: str, *params: Any) -> Any:
        body = json.dumps(
            {"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": list(params)}
        ).encode()
        try:
            status, data = self._exchange(body)
        except _CLOSED:
            # bitcoind closed the kept-alive connection (idle timeout, restart): once more, anew. A
            # request that never reached it is safe to send again.
            self.close()
            status, data = self._exchange(body)
        except (socket.timeout, OSError):
            self.close()
            raise
        if status == 401:
            raise JSONRPCException({"code": -401, "message": "unauthorized"}, method)
        try:
            reply = json.loads(data)
        except ValueError:
            raise JSONRPCException(
                {"code": -status, "message": f"HTTP {status}: {data[:200]!r}"}, method
            ) from None
        if reply.get("error"):
            raise JSONRPCException(reply["error"], method)
        return reply.get("result")
