"""A CI-style scenario in Python: a ring of four mines a mature chain, splits in two halves that mine
apart, joins again, and checks that the lighter half reorganised onto the heavier one. Exits 0 on
success; the cluster is removed whatever happens."""

import sys

import regbox


def main() -> int:
    with regbox.Cluster.up(nodes=4, topology="ring") as c:
        c.mine("n0", 101)
        c.sync_blocks()
        c.split_network()
        c.mine("n0", 3)  # n0 and n1: 3 blocks
        c.mine("n2", 5)  # n2 and n3: 5 blocks, more work
        assert c.nodes[0].getbestblockhash() != c.nodes[2].getbestblockhash()
        joined = c.join_network()
        depths = joined.reorg_depths()
        assert joined.height == 106, joined
        assert depths == {"n0": 3, "n1": 3, "n2": 0, "n3": 0}, depths
        print(f"{c.name}: joined at height {joined.height}, reorg depths {depths}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
