"""A chat turn's inputs (case file, X-ray, labs CSV, pasted note, age and sex) turned into one case.

Image paths are confined when the caller says where uploads live (`confine_to`, the web server's
per-thread folder): the case's `cxr.path` must then name a file inside that folder, by a relative
path without `..`; an absolute path or `..` is refused with a clear error, whatever file it would
reach. An image uploaded with the case file takes the case's `cxr.path` (a case from
`mmdx data demo` names `../images/X.png`: uploaded together with X.png, it works). Errors name the
field and the file as the user wrote it, never a server path.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath, PureWindowsPath

from mmdx.core.case import PatientCase
from mmdx.core.errors import CaseValidationError


def labs_from_csv(text: str) -> list[dict]:
    """A labs CSV with columns time, variable, value, unit -> measurement dicts (validated by the case)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    need = {"time", "variable", "value", "unit"}
    if not rows or not need <= set(rows[0]):
        raise CaseValidationError([("labs_csv", f"expected columns {sorted(need)}")])
    out = []
    for i, r in enumerate(rows):
        try:
            out.append({"time": r["time"], "variable": r["variable"], "value": float(r["value"]), "unit": r["unit"]})
        except ValueError:
            raise CaseValidationError([(f"labs_csv.row{i + 2}.value", f"not a number: {r['value']!r}")]) from None
    return out


def confined_image(path_text: str, folder: Path) -> str:
    """`path_text` as a path relative to `folder` that stays inside it, or CaseValidationError."""
    if PurePosixPath(path_text).is_absolute() or PureWindowsPath(path_text).is_absolute() or path_text.startswith("~"):
        raise CaseValidationError([("cxr.path", f"{path_text!r} is an absolute path; name the image uploaded with the case "
                                                "(absolute paths are refused)")])
    parts = PurePosixPath(path_text.replace("\\", "/")).parts
    if ".." in parts:
        raise CaseValidationError([("cxr.path", f"{path_text!r} leaves the upload folder ('..' is refused); "
                                                "upload the image together with the case file")])
    root = folder.resolve()
    target = (root / PurePosixPath(*parts)).resolve()
    if root != target and root not in target.parents:  # a symlink inside the folder pointing out
        raise CaseValidationError([("cxr.path", f"{path_text!r} resolves outside the upload folder; refused")])
    if not target.is_file():
        raise CaseValidationError([("cxr.path", f"the case names the image {path_text!r}, which was not uploaded; "
                                                "upload it together with the case file")])
    return str(target.relative_to(root))


def apply_attachments(case_json: str | None, case_dir: str | None, attach: dict,
                      confine_to: Path | None = None) -> tuple[PatientCase, str | None]:
    """Build the turn's case from the stored one and the attachments. Raises CaseValidationError.

    `attach` keys: case_json (+ case_dir), image_path (+ view), labs_csv, note, age, sex, case_id."""
    if attach.get("case_json"):
        case_dir = attach.get("case_dir") or case_dir
        try:
            base = json.loads(attach["case_json"])
        except json.JSONDecodeError as e:
            raise CaseValidationError([("case_file", f"not valid JSON: {e.msg} at line {e.lineno}")]) from None
        if not isinstance(base, dict):
            raise CaseValidationError([("case_file", "expected a JSON object")])
    elif case_json:
        base = json.loads(case_json)
    else:
        if attach.get("age") is None:
            raise CaseValidationError([("demographics.age", "attach a case file, or give the patient's age (and sex) to start a new case")])
        base = {"case_id": attach.get("case_id") or "chat-" + datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S"),
                "demographics": {"age": attach["age"], "sex": attach.get("sex") or "unknown"}, "origin": "chat upload"}
    if attach.get("image_path"):
        cxr = base.get("cxr") if isinstance(base.get("cxr"), dict) else {}
        base["cxr"] = {**{k: v for k, v in cxr.items() if k in ("view", "acquired_at", "metadata", "sha256")},
                       "path": str(attach["image_path"]), "view": attach.get("view") or cxr.get("view", "UNKNOWN")}
    if confine_to is not None and isinstance(base.get("cxr"), dict) and isinstance(base["cxr"].get("path"), str):
        base["cxr"] = {**base["cxr"], "path": confined_image(base["cxr"]["path"], confine_to)}
        case_dir = str(confine_to)
    if attach.get("labs_csv"):
        base["measurements"] = list(base.get("measurements", [])) + labs_from_csv(attach["labs_csv"])
    if attach.get("note"):
        base["notes"] = list(base.get("notes", [])) + [{"kind": "pasted_note", "text": attach["note"]}]
    case = PatientCase.from_dict(base, base_dir=case_dir)
    return case, case_dir
