"""Every Python example in the README runs as written (on the embedded model), in order, in
one fresh interpreter, as a new user would paste them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_python_examples():
    assert len(python_blocks()) >= 3


@pytest.mark.model
def test_the_readme_python_examples_run_as_written(tmp_path):
    script = "\n\n".join(python_blocks())
    (tmp_path / "readme_examples.py").write_text(script, encoding="utf-8")
    env = {**os.environ, "TOKENDICE_DB": str(tmp_path / "readme.db")}
    done = subprocess.run([sys.executable, "readme_examples.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
