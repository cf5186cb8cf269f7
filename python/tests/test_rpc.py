"""The node RPC client against a local server: a connection the server closed while idle is reopened
without the caller seeing it, and errors come back as JSONRPCException."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from regbox import JSONRPCException
from regbox.rpc import RpcClient


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as bitcoind
    connections = set()

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Handler.connections.add(self.client_address)
        if request["method"] == "fail":
            body = {"result": None, "error": {"code": -8, "message": "no such thing"}, "id": request["id"]}
            status = 500
        else:
            body = {"result": request["params"], "error": None, "id": request["id"]}
            status = 200
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if request["method"] == "close":
            # As bitcoind does to a connection idle for 30 s: closed after the answer, unannounced.
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    Handler.connections = set()
    yield f"http://user:pass%40word@127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_a_connection_closed_by_the_node_is_reopened(server):
    client = RpcClient(server)
    assert client.call("echo", 1, "a") == [1, "a"]
    assert client.call("echo", 2) == [2]
    assert len(Handler.connections) == 1, "one kept-alive connection"
    assert client.call("close") == []
    # The server has closed the connection: the next call goes out again on a new one.
    assert client.call("echo", 3) == [3]
    assert len(Handler.connections) == 2


def test_an_error_of_the_node_is_a_jsonrpc_exception(server):
    with pytest.raises(JSONRPCException) as e:
        RpcClient(server).call("fail")
    assert e.value.code == -8
    assert e.value.message == "no such thing"
    assert e.value.error == {"code": -8, "message": "no such thing"}
