"""The Python API against the real engine and real bitcoind: a ring brought up, mined on, split and
joined with a reorg, and removed; errors as regbox says them; a cluster opened by name."""

import subprocess

import pytest

import regbox


def labelled(cluster: str) -> list:
    """Every container, network and volume the engine holds for `cluster`."""
    found = []
    for kind in ("container", "network", "volume"):
        command = ["docker", kind, "ls", "-q", "--filter", f"label=regbox.cluster={cluster}"]
        if kind == "container":
            command.append("-a")
        found += subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return found


def test_a_ring_is_split_joined_and_removed():
    with regbox.Cluster.up(nodes=4, topology="ring") as c:
        name = c.name
        assert [n.name for n in c.nodes] == ["n0", "n1", "n2", "n3"]
        # Any RPC by attribute, straight to the node.
        assert c.nodes[0].getblockcount() == 0
        assert c.mine("n0", 101).height == 101
        c.sync_blocks()
        assert c.nodes[3].getblockcount() == 101
        # Core's split: two halves that mine apart; the join reorganises the lighter half.
        c.split_network()
        c.mine("n0", 2)
        c.mine("n2", 3)
        assert c.nodes[0].getbestblockhash() != c.nodes[2].getbestblockhash()
        joined = c.join_network()
        assert joined.height == 104
        assert joined.reorg_depths() == {"n0": 2, "n1": 2, "n2": 0, "n3": 0}
        c.wait_until(lambda: c.nodes[1].getbestblockhash() == joined.tip, timeout=30)
        # Bad input is BadInput, with regbox's words; bitcoind's errors are JSONRPCException.
        with pytest.raises(regbox.BadInput) as e:
            c.mine("n9")
        assert "no node `n9`" in e.value.message and e.value.exit_code == 2
        with pytest.raises(regbox.JSONRPCException) as e:
            c.nodes[0].getblock("00")
        assert e.value.code == -8
        # Another handle on the same cluster, by name.
        other = regbox.Cluster.open(name)
        assert other.nodes[2].getblockcount() == 104
    assert labelled(name) == []


def test_a_bad_manifest_is_bad_input_with_its_location(tmp_path):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text("name: pybad\nnodes: four\n")
    with pytest.raises(regbox.BadInput) as e:
        regbox.Cluster.up(manifest)
    assert "bad.yaml:2:8" in e.value.message, e.value.message
    assert labelled("pybad") == []


def wait_for_operator(url: str) -> None:
    """Until the operator at `url` answers /healthz (30 s at most)."""
    import time
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1).read()
            return
        except OSError:
            assert time.monotonic() < deadline, "the operator never answered"
            time.sleep(0.1)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_verb_goes_through_an_operator_when_one_is_named():
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    operator = subprocess.Popen(
        [regbox.binary(), "operator", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    name = None
    try:
        wait_for_operator(url)
        with regbox.Cluster.up(nodes=3, topology="line", operator=url) as c:
            name = c.name
            assert c.mine("n0", 3).height == 3
            c.sync_blocks()
            # Node RPC goes through the operator too, with bitcoind's errors as they are.
            assert c.nodes[2].getblockcount() == 3
            assert c.nodes[1].getblockhash(3) == c.nodes[0].getbestblockhash()
            try:
                c.nodes[0].getblock("00")
                raise AssertionError("getblock 00 answered")
            except regbox.JSONRPCException as e:
                assert e.code == -8, e
    finally:
        operator.terminate()
        operator.wait(timeout=60)
    assert name and labelled(name) == []


def test_an_operator_with_a_token_is_asked_with_it(tmp_path):
    """`token=` goes with every command to the operator (as REGBOX_TOKEN for the CLI it runs); without
    it, the operator's 401 is BadInput naming what is missing."""
    import os

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    name = f"pytok-{os.getpid()}"
    manifest = tmp_path / "tok.yaml"
    manifest.write_text(f"name: {name}\nnodes: 1\n")
    token = "py-token-0123456789abcdef"
    env = {k: v for k, v in os.environ.items() if k not in ("REGBOX_TOKEN", "REGBOX_OPERATOR")}
    operator = subprocess.Popen(
        [regbox.binary(), "operator", str(manifest), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**env, "REGBOX_TOKEN": token},
    )
    saved = os.environ.pop("REGBOX_TOKEN", None)
    try:
        wait_for_operator(url)
        with pytest.raises(regbox.BadInput) as e:
            regbox.Cluster.open(name, operator=url)
        assert "REGBOX_TOKEN" in e.value.message, e.value.message
        with regbox.Cluster.up(manifest, operator=url, token=token) as c:
            assert c.mine("n0", 2).height == 2
            assert regbox.Cluster.open(name, operator=url, token=token).nodes[0].getblockcount() == 2
    finally:
        if saved is not None:
            os.environ["REGBOX_TOKEN"] = saved
        operator.terminate()
        operator.wait(timeout=60)
    assert labelled(name) == []


def test_an_https_operator_is_asked_trusting_the_ca_given(tmp_path):
    """`operator_ca=` goes with every command to an https:// operator (as REGBOX_OPERATOR_CA for the
    CLI it runs); without it, the operator's certificate is not trusted, and the error says what to
    give. The certificate is made with openssl, which the test needs."""
    import os
    import shutil
    import ssl
    import time
    import urllib.request

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        + ["-days", "1", "-subj", "/CN=regbox-test"]
        + ["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    name = f"pytls-{os.getpid()}"
    manifest = tmp_path / "tls.yaml"
    manifest.write_text(f"name: {name}\nnodes: 1\n")
    env = {k: v for k, v in os.environ.items() if k not in ("REGBOX_TOKEN", "REGBOX_OPERATOR")}
    operator = subprocess.Popen(
        [regbox.binary(), "operator", str(manifest), "--listen", f"127.0.0.1:{port}"]
        + ["--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    saved = os.environ.pop("REGBOX_OPERATOR_CA", None)
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1, context=trusting).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "the operator never answered over TLS"
                time.sleep(0.1)
        with pytest.raises(regbox.Failure) as e:
            regbox.Cluster.open(name, operator=url)
        assert "not trusted" in e.value.message and "--operator-ca" in e.value.message, e.value
        with regbox.Cluster.up(manifest, operator=url, operator_ca=cert) as c:
            assert c.mine("n0", 2).height == 2
            assert regbox.Cluster.open(name, operator=url, operator_ca=cert).nodes[0].getblockcount() == 2
    finally:
        if saved is not None:
            os.environ["REGBOX_OPERATOR_CA"] = saved
        operator.terminate()
        operator.wait(timeout=60)
    assert labelled(name) == []


def test_a_node_connection_idle_past_bitcoinds_timeout_is_reopened():
    import time

    with regbox.Cluster.up(nodes=1, topology="line") as c:
        node = c.nodes[0]
        assert node.getblockcount() == 0
        # bitcoind closes an HTTP connection idle for 30 s (-rpcservertimeout); this idle time is
        # what is tested, not a wait for something to happen.
        time.sleep(31)
        assert node.getblockcount() == 0
