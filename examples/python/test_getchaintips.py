"""The logic of Bitcoin Core's functional test `rpc_getchaintips.py`, written anew on a regbox
cluster: split the network, mine a longer chain on one side, join, and read the fork from
`getchaintips`. What changes from Core's framework: the cluster comes from the fixture (real nodes in
Docker, split by moving them between networks), and the chain starts at genesis instead of a cache."""

import pytest


@pytest.mark.regbox(nodes=4, topology="ring")
def test_getchaintips(regbox_cluster):
    c = regbox_cluster
    tips = c.nodes[0].getchaintips()
    assert len(tips) == 1
    assert tips[0]["branchlen"] == 0
    assert tips[0]["height"] == 0
    assert tips[0]["status"] == "active"

    # Split the network and build two chains of different lengths.
    c.split_network()
    c.mine("n0", 10)
    c.mine("n2", 20)
    c.sync_blocks(["n0", "n1"])
    c.sync_blocks(["n2", "n3"])

    tips = c.nodes[1].getchaintips()
    assert len(tips) == 1
    short_tip = tips[0]
    assert short_tip["branchlen"] == 0
    assert short_tip["height"] == 10
    assert short_tip["status"] == "active"

    tips = c.nodes[3].getchaintips()
    assert len(tips) == 1
    long_tip = tips[0]
    assert long_tip["branchlen"] == 0
    assert long_tip["height"] == 20
    assert long_tip["status"] == "active"

    # Join the network halves and check that we now have two tips (at least at the nodes that
    # previously had the short chain).
    c.join_network()

    tips = c.nodes[0].getchaintips()
    assert len(tips) == 2
    assert tips[0] == long_tip

    assert tips[1]["branchlen"] == 10
    assert tips[1]["status"] == "valid-fork"
    tips[1]["branchlen"] = 0
    tips[1]["status"] = "active"
    assert tips[1] == short_tip
