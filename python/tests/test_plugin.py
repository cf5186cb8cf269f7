"""The pytest plugin as a user's suite meets it: the fixture's cluster per test, under names of its
own, removed after a passing and after a failing test, whose report carries every node's log."""

import re
import subprocess


def labelled(prefix: str) -> list:
    """Containers of clusters whose names start with `prefix`."""
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", "label=regbox.cluster", "--format", '{{.Label "regbox.cluster"}}'],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    return [c for c in out if c.startswith(prefix)]


def test_the_fixture_gives_each_test_its_cluster_and_takes_it_away(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.regbox(nodes=3, topology="line")
        def test_line(regbox_cluster):
            c = regbox_cluster
            assert [n.name for n in c.nodes] == ["n0", "n1", "n2"]
            c.mine("n0", 1)
            c.sync_blocks()
            assert c.nodes[2].getblockcount() == 1
            print("cluster", c.name)

        def test_default(regbox_cluster):
            assert len(regbox_cluster.nodes) == 4
            print("cluster", regbox_cluster.name)

        @pytest.mark.regbox(nodes=2, topology="line")
        def test_fails(regbox_cluster):
            print("cluster", regbox_cluster.name)
            assert regbox_cluster.nodes[0].getblockcount() == 99
        """
    )
    result = pytester.runpytest_subprocess("-s", "-rA")
    result.assert_outcomes(passed=2, failed=1)
    text = result.stdout.str()
    names = re.findall(r"cluster (pt-\S+)", text)
    assert len(set(names)) == 3, names
    # The failed test's report carries each node's last log lines.
    for node in ("n0", "n1"):
        assert re.search(rf"regbox pt-\S+ {node}: last 30 log lines", text), text
    assert labelled("pt-") == []
