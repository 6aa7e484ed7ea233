"""Tests of `mmdx data` (data/cli.py): --help everywhere, build/stats on a tiny real simulation,
and `data demo` writing cases that PatientCase.load accepts."""
from __future__ import annotations

import json
import re

import pytest

from mmdx.core.case import Modality, PatientCase
from mmdx.cli import main as mmdx_main
from mmdx.data import cohort
from mmdx.data.cli import main
from mmdx.data.demo_cases import demo_dir
from mmdx.core.labels import DIAGNOSES, find_label_leaks



@pytest.mark.parametrize("sub", ["build", "demo", "stats", "audit"])
def test_help_on_every_subcommand(sub, capsys):
    with pytest.raises(SystemExit) as e:
        main([sub, "--help"])
    assert e.value.code == 0
    assert "usage: mmdx data " + sub in capsys.readouterr().out


def test_top_level_help_and_routing(capsys):
    with pytest.raises(SystemExit) as e:
        mmdx_main(["data", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for sub in ("build", "demo", "stats", "import"):
        assert sub in out


def test_import_forwards_argv_to_readers_cli(monkeypatch):
    import sys
    import types

    seen = []
    fake = types.ModuleType("mmdx.data.readers.cli")
    fake.main = lambda argv=None: seen.append(argv) or 7
    monkeypatch.setitem(sys.modules, "mmdx.data.readers.cli", fake)
    assert main(["import", "mimic", "--root", "/x", "--help"]) == 7
    assert seen == [["mimic", "--root", "/x", "--help"]]


def test_bad_arguments_are_rejected(capsys):
    for argv in (["build", "--out", "x", "--seeds", "1,a"], ["build", "--out", "x", "--population", "0"], ["build"],
                 ["build", "--out", "x", "--source", "nope"], ["build", "--out", "x", "--note-style", "poem"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    assert main(["stats", "/nonexistent/cohort"]) == 2


def test_build_then_stats_on_a_small_cohort(tmp_path, capsys):
    assert main(["build", "--seed", "3", "--population", "400", "--out", str(tmp_path), "--workers", "1",
                 "--start", "2025-01-01", "--end", "2025-06-30"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["params"] == {"seeds": [3], "population": 400, "start": "2025-01-01", "end": "2025-06-30"}
    assert manifest["source"] == "ed" and sum(manifest["cases_per_split"].values()) > 30
    cases = list(cohort.iter_cases(tmp_path))
    assert all(c.origin.startswith("synthetic: mmdx-ed") for c in cases)
    assert all("2025-01-01" <= c.notes[0].time.date().isoformat() <= "2025-06-30" for c in cases)
    capsys.readouterr()
    assert main(["stats", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for d in DIAGNOSES:
        row = next(line for line in out.splitlines() if line.startswith(d + " "))
        assert [int(x) for x in row.split()[1:]] == [manifest["counts"][s][d] for s in cohort.SPLITS]


def test_demo_writes_valid_cases(tmp_path, capsys):
    assert (demo_dir() / "README.md").is_file()
    assert main(["demo", "--out", str(tmp_path)]) == 0
    paths = sorted((tmp_path / "cases").glob("*.json"))
    assert len(paths) >= 5
    seen_modalities = set()
    for p in paths:
        case = PatientCase.load(p)
        assert case.origin.startswith("synthetic: mmdx-ed") and case.labels is not None
        assert "synthetic" in case.labels.source
        if case.cxr is not None:
            assert case.image_path().is_file(), case.case_id
        for note in case.notes:  # past history names comorbidities, in every class; nothing else names one
            assert not find_label_leaks(re.sub(r"(PMH|Past history|Hx|PMHx):[^.]*\.", "", note.text)), note.text
        seen_modalities.add(case.modalities)
    assert frozenset({Modality.cxr, Modality.labs, Modality.notes}) in seen_modalities
    assert frozenset({Modality.cxr}) in seen_modalities and frozenset({Modality.notes}) in seen_modalities
