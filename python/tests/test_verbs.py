"""Every verb of regbox's vocabulary once from Python, on one real cluster: each answers with its typed
report (parsed strictly, so a field the crate adds and the report class lacks fails here), and what
the report says is checked against the nodes themselves."""

import re

import pytest

import regbox
from regbox import reports

from test_cluster import labelled

MANIFEST = """\
name: {name}
nodes: 4
topology: ring
defaults:
  wallet: true
"""


def test_every_verb_answers_with_its_typed_report(tmp_path):
    name = f"pyverbs-{tmp_path.name[-8:]}".replace("_", "-")
    manifest = tmp_path / "ring.yaml"
    manifest.write_text(MANIFEST.format(name=name))
    c = regbox.Cluster.up(manifest)
    try:
        status = c.status()
        assert [type(s) for s in status] == [reports.NodeStatus] * 4
        assert [s.state for s in status] == ["running"] * 4
        assert sorted(status[0].peers) == ["n1", "n3"]

        url = c.url("n2")
        assert isinstance(url, reports.Connection) and url.node == "n2"
        assert url.rpc_url.startswith(f"http://{url.rpc_user}:{url.rpc_password}@")

        mined = c.mine("n0", 101)
        assert isinstance(mined, reports.Mined) and mined.height == 101 and len(mined.blocks) == 101
        assert mined.blocks[-1] == c.nodes[0].getbestblockhash()

        sent = c.send("n0", "n1", 1.5)
        assert isinstance(sent, reports.Sent) and sent.from_ == "n0" and sent.amount_sat == 150_000_000
        waited = c.sync_mempools()
        assert isinstance(waited, reports.Waited) and waited.met == {"mempool": 1}
        assert sent.txid in c.nodes[3].getrawmempool()
        synced = c.sync_all()
        assert isinstance(synced, reports.Synced)
        assert (synced.nodes, synced.mempool_size, synced.best_hash) == (4, 1, mined.blocks[-1])
        assert c.wait("height", 101, "n2").until == "height 101 on n2"

        wired = c.connect_nodes("n0", "n2")
        assert wired == reports.Wired("n0", "n2", True)
        assert "n2" in c.status()[0].peers
        assert c.disconnect_nodes("n0", "n2").connected is False

        isolated = c.partition(isolate="n3", mode="silent")
        assert isinstance(isolated, reports.PartitionReport) and isolated.mode == "silent"
        assert sorted(s.members for s in isolated.segments) == [["n0", "n1", "n2"], ["n3"]]
        c.mine("n3", 2)
        healed = c.heal()
        assert isinstance(healed, reports.PartitionReport) and len(healed.segments) == 1
        assert sorted(healed.graph) == ["n0-n1", "n0-n3", "n1-n2", "n2-n3"]
        halves = c.partition(kind="random-halves", seed=7)
        assert halves.seed == 7 and len(halves.segments) == 2
        joined = c.join_network()
        assert isinstance(joined, reports.HealReport) and joined.height == 103
        assert c.nodes[1].getbestblockhash() == joined.tip

        shaped = c.netem("n0", delay="100ms")
        assert shaped["n0"].shaping == reports.Shaping(100_000, 0, "uniform", 0.0, 0.0, 0.0, 0.0, None)
        cut = c.cut("n1", "n2", one_way=True)
        assert cut["n1"].cuts == {"n2": "drop"} and cut["n0"].shaping is not None
        assert c.clear() == {}
        assert c.status()[1].links == ""

        throttled = c.throttle("n2", cpus=0.5, memory="128m")
        assert throttled == {"n2": reports.Throttle(cpus=0.5, memory=128 << 20)}
        assert c.throttle("n2", cpus=0.25)["n2"] == reports.Throttle(cpus=0.25, memory=128 << 20)
        assert c.status()[2].throttle == reports.Throttle(cpus=0.25, memory=128 << 20)
        assert c.status()[1].throttle is None
        with pytest.raises(regbox.BadInput):
            c.throttle("n2", cpus=0)
        assert c.clear_throttle() == {}
        assert c.status()[2].throttle is None

        assert c.stop_node("n3") == reports.Faulted("n3", "stop")
        assert c.status()[3].state == "exited"
        assert c.start_node("n3") == reports.Faulted("n3", "start")
        assert c.fault("pause", "n2").fault == "pause"
        assert c.fault("unpause", "n2").fault == "unpause"
        assert c.restart_node("n1").fault == "restart"
        clocked = c.clock("n1", offset="+1h")
        assert clocked == reports.Clocks([reports.NodeClock("n1", 3600)])
        assert [s.clock for s in c.status()] == [None, 3600, None, None]
        drifting = c.clock("n1", drift="+1s/h")
        assert drifting == reports.Clocks([reports.NodeClock("n1", 3600, "+1s/h")])
        assert [s.drift for s in c.status()] == [None, "+1s/h", None, None]
        assert c.clock(clear=True).nodes[1] == reports.NodeClock("n1", 0)
        assert all(s.clock is None and s.drift is None for s in c.status())
        c.sync_blocks()

        measured = c.measure(rounds=2)
        assert isinstance(measured, reports.Measurement) and measured.kind == "block"
        assert [len(r.arrivals) for r in measured.rounds] == [4, 4]
        assert measured.summary.missing == 0 and measured.summary.p50 is not None

        plan = c.apply(manifest, dry_run=True)
        assert isinstance(plan, reports.Plan) and plan.exists and plan.create == [] and plan.diff == []
        c.stop_node("n2")
        applied = c.apply(manifest)
        assert applied.start == ["n2"] and applied.create == [], applied
        assert c.status()[2].state == "running"
        c.sync_blocks()

        assert c.rpc("n0", "getblockcount") == 105
        assert c.rpc("n0", "getblockhash", 105) == c.nodes[0].getbestblockhash()
        assert re.search(r"UpdateTip: new best=\w+ height=105", c.logs("n0", tail=50))

        saved = c.snapshot("at105")
        assert isinstance(saved, reports.SnapshotReport) and [n.height for n in saved.nodes] == [105] * 4
        exported = c.export_snapshot("at105", tmp_path / "at105.tar.gz")
        assert isinstance(exported, reports.Exported) and exported.nodes == ["n0", "n1", "n2", "n3"]
        assert c.import_snapshot(tmp_path / "at105.tar.gz", "copy").name == "copy"
        fresh = c.reset()
        assert isinstance(fresh, reports.ResetReport) and [n.height for n in fresh.nodes] == [0] * 4
        back = c.reset(to="copy")
        assert back.to == "copy" and back.nodes == saved.nodes and back.remade == []
        assert sorted(c.status()[0].peers) == ["n1", "n3"]

        # A condition that does not hold in time: Timeout, naming it and what the node last said.
        with pytest.raises(regbox.Timeout) as e:
            c.wait("height", 10_000, "n1", timeout=1)
        assert e.value.what == "height 10000 on n1", e.value.message
        assert "n1=105" in e.value.last and e.value.exit_code == 1
        with pytest.raises(regbox.BadInput):
            c.fault("explode", "n1")
    finally:
        removed = c.down()
    # The four nodes and the helpers the link faults started (the agent).
    assert isinstance(removed, reports.DownReport) and removed.cluster == name and removed.containers > 4
    assert labelled(name) == []


def test_a_report_field_the_class_lacks_fails_strict_parsing():
    data = {"a": "n0", "b": "n1", "connected": True}
    assert reports.parse(reports.Wired, data, strict=True) == reports.Wired("n0", "n1", True)
    with pytest.raises(TypeError, match=r"Wired has no field for \['since'\]"):
        reports.parse(reports.Wired, {**data, "since": 3}, strict=True)
    assert reports.parse(reports.Wired, {**data, "since": 3}, strict=False).a == "n0"
    with pytest.raises(TypeError):
        reports.parse(reports.Wired, {"a": "n0"})
