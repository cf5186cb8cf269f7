"""The pytest plugin as a user's suite meets it: a fresh cluster per test, under names of its own, a
later test of the same kind getting an earlier one's reset, all removed when the session ends (after
passing and failing tests alike), a failed test's report carrying every node's log."""

import re
import subprocess

import pytest


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

        @pytest.mark.regbox(nodes=3, topology="line")
        def test_line_again(regbox_cluster):
            c = regbox_cluster
            # test_line's cluster, reset: a fresh chain, wired as declared.
            assert [n.getblockcount() for n in c.nodes] == [0, 0, 0]
            assert sorted(c.status()[1].peers) == ["n0", "n2"]
            print("cluster", c.name)
        """
    )
    result = pytester.runpytest_subprocess("-s", "-rA")
    result.assert_outcomes(passed=3, failed=1)
    text = result.stdout.str()
    names = re.findall(r"cluster (pt-\S+)", text)
    assert len(names) == 4 and len(set(names)) == 3 and names[0] == names[3], names
    # The failed test's report carries each node's last log lines.
    for node in ("n0", "n1"):
        assert re.search(rf"regbox pt-\S+ {node}: last 30 log lines", text), text
    assert labelled("pt-") == []


def test_two_workers_get_clusters_of_their_own(pytester):
    pytester.makepyfile(
        """
        import pathlib
        import pytest

        @pytest.mark.parametrize("i", range(4))
        @pytest.mark.regbox(nodes=2, topology="line")
        def test_one(regbox_cluster, i):
            regbox_cluster.mine("n0", i + 1)
            regbox_cluster.sync_blocks()
            assert regbox_cluster.nodes[1].getblockcount() == i + 1
            pathlib.Path(f"cluster-{i}").write_text(regbox_cluster.name)
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=4)
    names = [(pytester.path / f"cluster-{i}").read_text() for i in range(4)]
    # Each worker brings its cluster up once and resets it for its next test.
    assert all(re.fullmatch(r"pt-gw[01]-[0-9a-f]{8}", n) for n in names), names
    by_worker = {n[:6]: {m for m in names if m[:6] == n[:6]} for n in names}
    assert all(len(mine) == 1 for mine in by_worker.values()), names
    assert labelled("pt-") == []


def interrupt_when(process: subprocess.Popen, ready, group: bool = True, timeout: float = 120) -> int:
    """Sends SIGINT once `ready()` holds: to the process group, as a terminal's Ctrl-C does, or to
    the process alone, as `kill -INT` does; the process's exit code."""
    import os
    import signal
    import time

    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "never ready to interrupt"
        time.sleep(0.05)
    if group:
        os.killpg(process.pid, signal.SIGINT)
    else:
        os.kill(process.pid, signal.SIGINT)
    return process.wait(timeout=timeout)


def test_ctrl_c_in_a_test_still_takes_its_cluster_away(pytester):
    import sys

    pytester.makepyfile(
        """
        import pathlib
        import time

        def test_long(regbox_cluster):
            pathlib.Path("cluster").write_text(regbox_cluster.name)
            time.sleep(300)
        """
    )
    marker = pytester.path / "cluster"
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    code = interrupt_when(process, marker.exists)
    output = process.stdout.read()
    assert code == 2, output  # pytest's exit code for an interrupted run
    assert "KeyboardInterrupt" in output, output
    name = marker.read_text()
    assert name.startswith("pt-") and labelled(name) == [], output


@pytest.mark.parametrize("group", [True, False], ids=["ctrl-c", "kill-int"])
def test_an_interrupted_up_waits_for_regbox_to_remove_what_it_made(group):
    import sys
    import uuid

    from test_cluster import labelled as everything_of

    name = f"py-int-{uuid.uuid4().hex[:8]}"
    script = f"import regbox\nregbox.Cluster.up(nodes=8, topology='ring', name={name!r})\n"
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    # Interrupted midway through `up`, with four of its containers made.
    code = interrupt_when(process, lambda: len(labelled(name)) >= 4, group=group)
    output = process.stdout.read()
    assert code != 0 and "KeyboardInterrupt" in output, output
    assert everything_of(name) == [], output
