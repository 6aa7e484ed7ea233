"""The README's figure tables are what the files say: every marked block re-renders to itself from
the model cards, the cohort manifest and the evaluation summaries (evals/readme_tables.py).

Edit a number by hand, or change a card or summary without re-rendering, and this fails with a diff;
`python -m mmdx.evals.readme_tables` rewrites the blocks."""
from __future__ import annotations

import json
import re
from pathlib import Path

from mmdx.evals import readme_tables

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_generated_block_matches_its_sources():
    text = README.read_text()
    names = re.findall(r"<!-- generated:(\w+) -->", text)
    assert set(names) == set(readme_tables.BLOCKS), names  # every renderer has its block, once
    rendered = readme_tables.render(text)
    assert rendered == text, "README figure tables are stale: run `python -m mmdx.evals.readme_tables`"


def test_a_hand_edited_figure_is_caught(tmp_path):
    text = README.read_text()
    m = re.search(r"<!-- generated:cohort -->.*?\| cases \| ([\d,]+) \|", text, flags=re.S)
    assert m, "the cohort block has a cases row"
    edited = text[:m.start(1)] + "9,999" + text[m.end(1):]
    (tmp_path / "README.md").write_text(edited)
    assert readme_tables.main(["--readme", str(tmp_path / "README.md"), "--check"]) == 1


def test_cohort_modalities_add_up():
    """Failed before: the README's modality counts (5,141 + 2,670) did not add up to its 7,815 cases."""
    text = README.read_text()
    block = text.split("<!-- generated:cohort -->")[1].split("<!-- /generated:cohort -->")[0]
    cases = sum(int(x.replace(",", "")) for x in re.search(r"\| cases \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|", block).groups())
    mods = re.search(r"Modalities: (.*)\(together ([\d,]+)", block)
    parts = sum(int(x.replace(",", "")) for x in re.findall(r": ([\d,]+)", mods.group(1)))
    assert parts == cases == int(mods.group(2).replace(",", ""))


def test_the_readme_says_no_stale_facts():
    """Failed before: 'workflows/ is still empty' and 'only the first 24 h of labs and vitals' (the code
    keeps the ED stay, about 5 h; the clinosim conversion 4 h)."""
    text = README.read_text()
    assert "is still empty" not in text and "first 24 h" not in text


ABSOLUTE_PATH = re.compile(r"(?:^|[\s(`'\"])(/(?:[\w.-]+/)+[\w.-]*)")


def test_no_path_of_the_machine_that_ran_it():
    """Failed before, twice: the routing block printed the cohort as /work/main/cohorts/default; then
    the renderer stripped *this* checkout's root, so the README passed here and failed on CI's clone,
    whose root differs, because the recorded summaries still held /work/main/."""
    rendered = {name: block() for name, block in readme_tables.BLOCKS.items()}
    found = {name: ABSOLUTE_PATH.findall(body) for name, body in rendered.items()}
    assert not {k: v for k, v in found.items() if v}
    recorded = {p.name: ABSOLUTE_PATH.findall(p.read_text()) for p in readme_tables.RESULTS.glob("*.json")}
    assert not {k: v for k, v in recorded.items() if v}


def test_a_cohort_is_described_by_the_path_the_workflow_wrote(tmp_path):
    """The dataset line of a summary names the cohort as the workflow spells it, not where it lay."""
    from mmdx.evals.cases import CaseSource
    from mmdx.evals.workflow_spec import DatasetSpec

    (tmp_path / "imported" / "cases").mkdir(parents=True)
    source = CaseSource(DatasetSpec(path="imported"), root=tmp_path)
    assert "cases under imported " in source.describe() and str(tmp_path) not in source.describe()


def test_every_test_file_the_readme_names_exists():
    """Failed before: the reliability table cited tests/test_eval_run.py, gone since the workflows
    replaced the SQLite evaluation store (its kill-and-resume test is in test_workflows.py)."""
    names = set(re.findall(r"\b(test_[a-z0-9_]+\.py)\b", README.read_text()))
    assert names and not {n for n in names if not (README.parent / "tests" / n).is_file()}


def test_each_tool_as_it_runs_agrees_with_its_card():
    # The cohort workflow runs each shipped tool on the default cohort's test split, the split its card
    # was scored on. The notes card said 0.883 (first windows only) where the tool, pooling every
    # window, scores 0.864; a card that overstates its tool by more than rounding fails here.
    summary = json.loads((readme_tables.RESULTS / "cohort_summary.json").read_text())
    assert "cohorts/default" in summary["dataset"] and summary["split"] == "test"
    ran = summary["steps"]["tools"]["results"]
    checked = []
    for name, r in ran.items():
        card_path = readme_tables.ROOT / "models" / "weights" / name / "card.json"
        if not card_path.exists():
            continue
        card = json.loads(card_path.read_text())
        want = card["metrics"]["test"]["macro_auroc"]
        got = r["classification"]["macro_auroc"]
        assert abs(got - want) <= 0.005, f"{name}: card {want:.3f}, as the tool runs {got:.3f}"
        checked.append(name)
    assert {"cxr", "fused", "labs", "notes", "student_cxr", "student_labs", "student_notes"} <= set(checked), checked
