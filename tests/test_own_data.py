"""Your own data, end to end, on the real-format fixtures (tests/fixtures/chexpert): import writes
the cohort layout split by patient, `mmdx train` reads it (and names a wrong layout in one line),
the trained weights run in `mmdx tool --weights`, and the model is evaluated on the test split."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np

from mmdx.cli import main
from mmdx.core.case import PatientCase
from mmdx.core.labels import IMAGING_FINDINGS

FIX = Path(__file__).parent / "fixtures" / "chexpert" / "CheXpert-v1.0-small"
HEADER = next(csv.reader(open(FIX / "train.csv")))


def _dataset(root: Path, n_patients: int = 10) -> Path:
    """A CheXpert-format folder of `n_patients` patients (two studies for some) from the fixture images."""
    images = sorted(FIX.glob("train/*/*/view1_frontal.jpg"))
    rows = []
    labels = [("Cardiomegaly", "1.0"), ("Pleural Effusion", "1.0"), ("No Finding", "1.0"), ("Edema", "1.0")]
    for i in range(n_patients):
        for study in range(1 + (i % 3 == 0)):
            rel = f"CheXpert-v1.0-small/train/patient{i + 1:05d}/study{study + 1}/view1_frontal.jpg"
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(images[(i + study) % len(images)], dest)
            cells = {h: "" for h in HEADER}
            cells.update({"Path": rel, "Sex": "Female" if i % 2 else "Male", "Age": str(40 + i), "Frontal/Lateral": "Frontal",
                          "AP/PA": "AP"})
            name, v = labels[i % len(labels)]
            cells[name] = v
            rows.append([cells[h] for h in HEADER])
    csv_path = root / "CheXpert-v1.0-small" / "train.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    return csv_path


def test_import_train_tool_evaluate(tmp_path, capsys):
    csv_path = _dataset(tmp_path / "chexpert")
    cohort = tmp_path / "cohort"
    assert main(["data", "import", "chexpert", str(csv_path), "--out", str(cohort)]) == 0
    record = json.loads((cohort / "splits.json").read_text())
    by_split = {s: sorted((cohort / "cases" / s).glob("*.json")) for s in ("train", "val", "test")}
    assert all(by_split.values()), {s: len(v) for s, v in by_split.items()}
    assert sum(map(len, by_split.values())) == 14  # 10 patients, 4 of them with two studies
    # patient-level: no patient's cases in two splits
    seen: dict[str, str] = {}
    for split, files in by_split.items():
        for f in files:
            patient = f.name.split("_")[1]  # chexpert_patientNNNNN_studyN_view1_frontal.json
            assert seen.setdefault(patient, split) == split, f"{patient} in {seen[patient]} and {split}"
    assert record["patients"] == {s: len({f.name.split("_")[1] for f in by_split[s]}) for s in by_split}
    capsys.readouterr()

    # a flat folder (the old import) is a one-line error naming the fix, not a traceback
    flat = tmp_path / "flat"
    assert main(["data", "import", "chexpert", str(csv_path), "--out", str(flat), "--flat"]) == 0
    capsys.readouterr()
    assert main(["train", "cxr", "--data", str(flat), "--config", "tiny", "--out", str(tmp_path / "w0")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cases/train" in err and "mmdx data split" in err and "Traceback" not in err
    # ... and `mmdx data split` makes the layout from it
    assert main(["data", "split", str(flat), "--out", str(tmp_path / "resplit")]) == 0
    assert sorted(p.name for p in (tmp_path / "resplit" / "cases" / "test").glob("*.json")) == [p.name for p in by_split["test"]]

    weights = tmp_path / "weights"
    assert main(["train", "cxr", "--data", str(cohort), "--config", "tiny", "--out", str(weights), "--max-steps", "2",
                 "--batch-size", "4"]) == 0
    card = json.loads((weights / "card.json").read_text())
    assert card["n_test"] == len(by_split["test"]) and card["data_description"].startswith("data; origins: real: CheXpert")
    capsys.readouterr()

    probs, ys = [], []
    for f in by_split["test"]:
        assert main(["tool", "cxr", "--case", str(f), "--weights", str(weights), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["provenance"]["model_id"] == card["model_id"]
        probs.append([s["probability"] for s in out["scores"]])
        truth = PatientCase.load(f).labels.findings
        ys.append([lab in truth for lab in IMAGING_FINDINGS])
    from mmdx.models.calibration import evaluate

    report = evaluate(np.array(probs), np.array(ys, dtype=float), tuple(IMAGING_FINDINGS), n_boot=10)
    assert report["n_cases"] == len(by_split["test"]) and np.isfinite(report["nll"])
