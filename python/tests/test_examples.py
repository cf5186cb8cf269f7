"""The Python examples run as a user would run them (the pytest files in examples/python are run by
./test.sh beside this suite)."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def test_the_split_and_heal_script_passes():
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "split_and_heal.py")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "reorg depths {'n0': 3, 'n1': 3, 'n2': 0, 'n3': 0}" in done.stdout, done.stdout
