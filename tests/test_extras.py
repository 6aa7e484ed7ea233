"""Optional parts fail with one line naming their pip extra (core/extras.py), from Python and from
the command line, when their dependency is not installed (simulated: None in sys.modules)."""
from __future__ import annotations

import importlib
import sys

import pytest

from mmdx.core.extras import EXTRAS, MissingExtra, require


def test_require_names_the_extra_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtra) as e:
        require("ray", "ray")
    msg = str(e.value)
    assert "\n" not in msg and "mmdx[ray]" in msg and msg.startswith("ray is not installed")
    assert isinstance(e.value, ImportError)  # callers that expect an ImportError still get one
    assert set(EXTRAS) == {"ray", "serve", "train", "dev"}


@pytest.mark.parametrize("module", ["mmdx.tools.serving.serve_runner", "mmdx.tools.serving.deployment"])
def test_the_serve_runner_without_ray_serve_names_the_serve_extra(monkeypatch, module):
    monkeypatch.setitem(sys.modules, "ray.serve", None)
    for m in ("mmdx.tools.serving.serve_runner", "mmdx.tools.serving.deployment"):
        monkeypatch.delitem(sys.modules, m, raising=False)
    with pytest.raises(MissingExtra, match=r"mmdx\[serve\]"):
        importlib.import_module(module)


def test_the_cli_reports_a_missing_optional_module_as_one_line(monkeypatch, capsys):
    from mmdx import cli

    def train(argv):
        raise ModuleNotFoundError("No module named 'accelerate'", name="accelerate")

    monkeypatch.setitem(cli.COMMANDS, "train", ("tests_fake_train:main", "x"))
    monkeypatch.setitem(sys.modules, "tests_fake_train", type(sys)("tests_fake_train"))
    sys.modules["tests_fake_train"].main = train
    assert cli.main(["train", "cxr"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "accelerate is not installed" in err and "mmdx[train]" in err

    def other(argv):
        raise ModuleNotFoundError("No module named 'numpyy'", name="numpyy")

    sys.modules["tests_fake_train"].main = other
    with pytest.raises(ModuleNotFoundError):  # not an optional part: a bug, raised as it is
        cli.main(["train", "cxr"])
