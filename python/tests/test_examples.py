"""The Python examples, and the README's Python quickstart, run as a user would run them (the pytest
files in examples/python are run by ./test.sh beside this suite)."""

import re
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


def test_the_readmes_python_quickstart_prints_what_it_says():
    readme = (EXAMPLES.parents[1] / "README.md").read_text()
    block = readme.split("```python\nimport regbox\n", 1)[1].split("```", 1)[0]
    script = "import regbox\n" + block
    expected = re.search(r"# (\{'n0'.*\})", script).group(1)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected, done.stdout
