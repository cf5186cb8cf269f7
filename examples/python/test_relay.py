"""A pytest file using the regbox plugin: each test gets its own cluster from the marker."""

import pytest


@pytest.mark.regbox(nodes=3, topology="line")
def test_a_block_crosses_the_line(regbox_cluster):
    c = regbox_cluster
    tip = c.mine("n0", 1).blocks[-1]
    c.sync_blocks()
    assert c.nodes[2].getbestblockhash() == tip


@pytest.mark.regbox(nodes=4, topology="star")
def test_an_isolated_leaf_falls_behind_and_catches_up(regbox_cluster):
    c = regbox_cluster
    c.partition([["n3"], ["n0", "n1", "n2"]])
    c.mine("n1", 2)
    c.sync_blocks(["n0", "n1", "n2"])
    assert c.nodes[3].getblockcount() == 0
    c.heal(sync=True)
    assert c.nodes[3].getblockcount() == 2


@pytest.mark.regbox(nodes=3, topology="line", wallet=True)
def test_a_payment_relays_to_the_far_end_and_confirms(regbox_cluster):
    c = regbox_cluster
    c.mine("n0", 101)  # a mature coinbase to spend
    sent = c.send("n0", "n2", 2)
    c.sync_mempools()
    assert sent.txid in c.nodes[2].getrawmempool()
    block = c.mine("n1", 1).blocks[-1]
    c.sync_blocks()
    assert sent.txid in c.nodes[2].getblock(block)["tx"]
    assert c.nodes[2].getbalances()["mine"]["trusted"] == 2
