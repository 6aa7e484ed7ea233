"""Tools and helpers for the runner tests (test_ray_runner.py, test_serve_runner.py): a small real
torch tool that records every batch it runs in a file (so batching is checked from the tool's side,
not from the runner's word) and can be told to os._exit or to sleep on marked inputs, and a staged
variant whose two stages record when they ran."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

import torch

from mmdx.core.case import Demographics, Measurement, Modality, PatientCase
from mmdx.core.errors import ToolInputError
from mmdx.core.labels import DIAGNOSES
from mmdx.core.tool import CaseInput, ClassifierOutput, LabelScore, Provenance, partition_prepared, partition_runnable
from mmdx.tools.runner import ToolFailure


def ship_by_value() -> None:
    """Ray workers cannot import this module by name: ship its classes by value."""
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class TinyLabsNet(torch.nn.Module):
    """Features of the lab series -> 2-layer MLP -> one logit per diagnosis."""

    def __init__(self, n_features: int = 4, hidden: int = 16):
        super().__init__()
        self.fc1 = torch.nn.Linear(n_features, hidden)
        self.fc2 = torch.nn.Linear(hidden, len(DIAGNOSES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.fc1(x))  # (B, hidden)
        return self.fc2(h), h  # (B, L), (B, hidden)


class TinyLabsTool:
    """Test tool: a seeded MLP over four summary features of the labs series."""

    name: ClassVar[str] = "tiny_labs"
    requires: ClassVar[frozenset[Modality]] = frozenset({Modality.labs})

    def __init__(self, record_dir: str, device: str = "cpu"):
        torch.manual_seed(0)
        self.net = TinyLabsNet().eval().to(device)
        self.device = device
        self.record_dir = Path(record_dir)

    @staticmethod
    def features(case: PatientCase) -> list[float]:
        vals = [m.value for m in case.measurements]
        return [case.demographics.age / 100, len(vals) / 10, sum(vals) / len(vals) / 100, max(vals) / 100]

    def batch(self, inputs: list[CaseInput]) -> list[ClassifierOutput | ToolInputError]:
        with open(self.record_dir / "batches.jsonl", "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "size": len(inputs)}) + "\n")
        for inp in inputs:
            cid = inp.case.case_id
            flag = self.record_dir / f"crash-{cid}"
            if flag.exists():  # crash once: remove the flag first, then die without cleanup
                flag.unlink()
                os._exit(1)
            if (self.record_dir / f"always-crash-{cid}").exists():
                os._exit(1)
            if (self.record_dir / f"slow-{cid}").exists():
                time.sleep(30)
        results, todo = partition_runnable(self, inputs)
        self.classify(inputs, results, todo, [self.features(inputs[i].case) for i in todo])
        return results  # type: ignore[return-value]

    def classify(self, inputs: list[CaseInput], results: list, todo: list[int], rows: list[list[float]]) -> None:
        """Fill results[i] for i in `todo` from their feature rows: one forward pass."""
        if not todo:
            return
        x = torch.tensor(rows, dtype=torch.float32, device=self.device)
        with torch.no_grad():
            logits, emb = self.net(x)  # (B, L), (B, hidden)
        probs = torch.sigmoid(logits).cpu()
        prov = Provenance(model_id="tiny-labs-test", weights_sha256="0" * 64, device=self.device)
        for row, i in enumerate(todo):
            results[i] = ClassifierOutput(
                tool=self.name, case_id=inputs[i].case.case_id, target="diagnoses",
                scores=tuple(LabelScore(label=lab, probability=float(p), threshold=0.5)
                             for lab, p in zip(DIAGNOSES, probs[row])),
                embedding=tuple(float(v) for v in emb[row].cpu()), provenance=prov)


class StagedTinyLabsTool(TinyLabsTool):
    """TinyLabsTool in two stages (core.tool.StagedTool): `prepare` computes the features (slowly, as
    decoding an image would), `infer` runs the net (slowly, as a big model would). Both record when
    they ran, so a test can see the actor overlap them."""

    PREPARE_S, INFER_S = 0.05, 0.3

    def _record(self, stage: str, t0: float, n: int) -> None:
        with open(self.record_dir / "stages.jsonl", "a") as f:
            f.write(json.dumps({"stage": stage, "t0": t0, "t1": time.time(), "n": n}) + "\n")

    def prepare(self, inputs: list[CaseInput]) -> list:
        t0 = time.time()
        prepared, todo = partition_runnable(self, inputs)
        for i in todo:
            if (self.record_dir / f"prepare-bug-{inputs[i].case.case_id}").exists():
                raise RuntimeError("a bug in prepare")
            prepared[i] = self.features(inputs[i].case)
        time.sleep(self.PREPARE_S)
        self._record("prepare", t0, len(inputs))
        return prepared

    def infer(self, inputs: list[CaseInput], prepared: list) -> list:
        t0 = time.time()
        for inp in inputs:  # die on the model, mid-pipeline: the next call is being prepared meanwhile
            flag = self.record_dir / f"crash-{inp.case.case_id}"
            if flag.exists():
                flag.unlink()
                os._exit(1)
        results, todo = partition_prepared(prepared)
        self.classify(inputs, results, todo, [prepared[i] for i in todo])
        time.sleep(self.INFER_S)
        self._record("infer", t0, len(inputs))
        return results

    def batch(self, inputs: list[CaseInput]) -> list:
        return self.infer(inputs, self.prepare(inputs))


@dataclass
class StagedFactory:
    record_dir: str

    def __call__(self, name: str, device: str = "cpu") -> StagedTinyLabsTool:
        return StagedTinyLabsTool(self.record_dir, device=device)


@dataclass
class TinyFactory:
    """Picklable tool factory: builds TinyLabsTool under any of the names it is asked for."""

    record_dir: str

    def __call__(self, name: str, device: str = "cpu") -> TinyLabsTool:
        return TinyLabsTool(self.record_dir, device=device)


def make_case(i: int, with_labs: bool = True) -> PatientCase:
    t0 = datetime(2024, 3, 1, 8, 0)
    meas = tuple(
        Measurement(time=t0 + timedelta(hours=h), variable="heart_rate", value=60 + 7 * ((i + h) % 9), unit="/min")
        for h in range(1 + i % 4)
    ) if with_labs else ()
    return PatientCase(case_id=f"case-{i}", demographics=Demographics(age=20 + i % 70, sex="female"), measurements=meas)


def batch_sizes(record_dir: Path) -> list[int]:
    path = record_dir / "batches.jsonl"
    return [json.loads(line)["size"] for line in path.read_text().splitlines()] if path.exists() else []


def run_clients(client, n: int, timeout_s: float) -> None:
    """Run client(0..n-1) in n threads at once; fail if any is still running after `timeout_s`."""
    threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=timeout_s)
    assert not any(th.is_alive() for th in threads), "a client hung"


def assert_same(a, b) -> None:
    """Same typed result; probabilities to float32 rounding (batch shapes may change kernels)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, ToolFailure):
        assert (a.tool, a.case_id, a.kind) == (b.tool, b.case_id, b.kind)
        return
    assert (a.tool, a.case_id, a.target) == (b.tool, b.case_id, b.target)
    assert [s.label for s in a.scores] == [s.label for s in b.scores]
    torch.testing.assert_close(torch.tensor([s.probability for s in a.scores]),
                               torch.tensor([s.probability for s in b.scores]), rtol=1e-5, atol=1e-6)
