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
