"""scripts/setup, run against a stand-in python in a copy of the checkout: a first run prints no
pip "Location ... is ignored" pages and no NumPy warning (torch is never imported to read its
version), `./mmdx` installs without the test extras, `scripts/test` with them."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = r'''#!/usr/bin/env bash
# stands in for .venv/bin/python: records each call, answers like pip and python would
echo "$*" >> "$(dirname "$0")/calls.log"
case "$*" in
  *"import torch"*) echo "UserWarning: Failed to initialize NumPy: No module named 'numpy'" >&2; exit 0 ;;
  *"-m pip install"*)
    echo "WARNING: Location 'file:///opt/pypi/simple/torch/' is ignored: it is neither a file nor a directory." >&2
    echo "WARNING: Location 'file:///opt/pypi-more/simple/numpy/' is ignored: it is neither a file nor a directory." >&2
    echo "WARNING: a real warning stays visible" >&2
    exit 0 ;;
  *"print(m.version('torch')"*) echo "2.13.0" ;;
  *"m.version('torch')"*) [ -f "$(dirname "$0")/torch-installed" ] || exit 1; exit 0 ;;
esac
exit 0
'''


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "co"
    (root / "scripts").mkdir(parents=True)
    for f in ("pyproject.toml", "constraints.txt", "requirements-assets.txt", "scripts/setup", "scripts/test", "mmdx"):
        shutil.copy(ROOT / f, root / f)
    py = root / ".venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text(FAKE_PYTHON)
    py.chmod(py.stat().st_mode | stat.S_IEXEC)
    return root


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(root / "scripts" / "setup"), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHON": "false"})


def test_first_run_is_quiet_and_runtime_only(tmp_path):
    root = _checkout(tmp_path)
    r = _run(root)
    assert r.returncode == 0, r.stderr
    assert "is ignored" not in r.stderr and "NumPy" not in r.stderr
    assert "a real warning stays visible" in r.stderr
    calls = (root / ".venv" / "bin" / "calls.log").read_text()
    assert "import torch" not in calls
    installs = [c for c in calls.splitlines() if "-e " in c]
    assert installs and all("-e ." in c and "[dev]" not in c for c in installs)
    assert _run(root).stderr == ""  # the stamp: a second run does nothing


def test_the_test_script_asks_for_the_dev_extras(tmp_path):
    root = _checkout(tmp_path)
    assert _run(root).returncode == 0
    r = _run(root, "--dev")  # runtime set up already: the extras still need installing
    assert r.returncode == 0 and "test extras" in r.stderr
    assert any("-e .[dev]" in c for c in (root / ".venv" / "bin" / "calls.log").read_text().splitlines())
    assert _run(root, "--dev").stderr == "" and _run(root).stderr == ""  # dev covers runtime
    assert "./scripts/setup --dev" in (ROOT / "scripts" / "test").read_text()
    assert '"$here/scripts/setup"\n' in (ROOT / "mmdx").read_text()  # ./mmdx: runtime only


def test_extras_install_on_request_and_are_kept(tmp_path):
    root = _checkout(tmp_path)
    calls = root / ".venv" / "bin" / "calls.log"
    r = _run(root, "--extras", "serve,ray")
    assert r.returncode == 0 and "with extras ray,serve" in r.stderr
    assert any("-e .[ray,serve]" in c for c in calls.read_text().splitlines())
    assert _run(root, "--extras", "ray").stderr == "" and _run(root).stderr == ""  # already there
    assert _run(root, "--extras=train").returncode == 0  # a new one: installed with those already there
    assert any("-e .[ray,serve,train]" in c for c in calls.read_text().splitlines())
    bad = _run(root, "--extras", "gpu")
    assert bad.returncode == 2 and "unknown extra 'gpu'" in bad.stderr
    assert _run(root, "--bogus").returncode == 2


def test_the_dev_extra_holds_every_optional_part():
    """scripts/test installs `dev`: it must bring every extra, or tests of a part would be skipped."""
    tomllib = pytest.importorskip("tomllib")

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (self_ref,) = [d for d in extras["dev"] if d.startswith("mmdx[")]
    assert set(self_ref[len("mmdx["):-1].split(",")) == set(extras) - {"dev"}
