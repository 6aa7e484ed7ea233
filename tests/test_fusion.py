"""The fused model (models/fusion.py): every strategy and missing-modality method, what it may and may
not read, and the fused and student tools end to end on a tiny cohort with tiny encoders."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from mmdx.models.fusion import MISSING, STRATEGIES, FusionConfig, FusionModel

B = 4


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    toks = [torch.randn(B, 6, 12, generator=g), torch.randn(B, 9, 8, generator=g), torch.randn(B, 5, 16, generator=g)]
    masks = [torch.ones(B, 6, dtype=torch.bool), torch.tensor([[1] * 9, [1] * 5 + [0] * 4, [1] * 9, [1] * 2 + [0] * 7]).bool(),
             torch.ones(B, 5, dtype=torch.bool)]
    present = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=torch.bool)
    return toks, masks, present


def _model(strategy, missing):
    torch.manual_seed(0)
    m = FusionModel(FusionConfig(strategy=strategy, missing=missing, input_dims=(12, 8, 16), n_embd=16, n_head=2,
                                 n_slots=2, dropout=0.0, retrieval_bank=8))
    toks, masks, _ = _inputs(1)
    m.fill_bank(toks, masks)
    return m.eval()


@pytest.mark.parametrize("strategy,missing", list(itertools.product(STRATEGIES, MISSING)))
def test_every_strategy_and_method_trains_and_ignores_what_it_must_not_read(strategy, missing):
    model = _model(strategy, missing)
    toks, masks, present = _inputs()
    logits, emb = model(toks, masks, present)
    assert logits.shape == (B, 7) and emb.shape == (B, 16) and torch.isfinite(logits).all()
    # padding is never read
    t2 = [t.clone() for t in toks]
    t2[1][~masks[1]] = 1e3
    torch.testing.assert_close(model(t2, masks, present)[0], logits)
    # an absent modality's tokens are never read (row 1 has no labs, row 2 no cxr, row 3 no notes)
    t3 = [t.clone() for t in toks]
    t3[1][1] += 5.0
    t3[0][2] += 5.0
    t3[2][3] += 5.0
    torch.testing.assert_close(model(t3, masks, present)[0], logits)
    # a present modality is read: changing row 0's labs changes row 0's answer
    t4 = [t.clone() for t in toks]
    t4[1][0] += 3.0
    assert not torch.allclose(model(t4, masks, present)[0][0], logits[0])
    # and it trains: one step of gradient reaches the projection of every modality
    model.train()
    out, _, aux = model(toks, masks, torch.ones(B, 3, dtype=torch.bool), return_aux=True)
    (out.sum() + aux).backward()
    assert all(p.weight.grad is not None and p.weight.grad.abs().sum() > 0 for p in model.proj)


def test_generative_imputation_learns_from_present_modalities():
    model = _model("early_concat", "generative").train()
    toks, masks, _ = _inputs()
    _, _, aux = model(toks, masks, torch.ones(B, 3, dtype=torch.bool), return_aux=True)
    assert aux.item() > 0  # the reconstruction loss is on wherever a modality can be predicted from the others


def test_modality_dropout_only_in_training_and_never_drops_everything():
    model = _model("irene", "dropout")
    model.config.modality_dropout = 1.0  # drop every droppable modality
    toks, masks, present = _inputs()
    model.train()
    logits, _ = model(toks, masks, present)  # at least one modality is kept per row: no empty sequence
    assert torch.isfinite(logits).all()
    model.eval()
    a, _ = model(toks, masks, present)
    b, _ = model(toks, masks, present)
    torch.testing.assert_close(a, b)  # evaluation is deterministic


def test_unknown_strategy_or_method_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown fusion strategy"):
        FusionConfig(strategy="late")
    with pytest.raises(ValueError, match="missing-modality method"):
        FusionConfig(missing="mean")


# ---------------------------------------------------------------- end to end on a tiny cohort

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small ED cohort, tiny encoders, a tiny fused model and a distilled student (seconds each)."""
    from mmdx.data.cohort import build_cohort
    from mmdx.models.train import main as train_main

    root = tmp_path_factory.mktemp("fusion")
    data, w = root / "cohort", root / "weights"
    build_cohort(data, seeds=[61], population=900, workers=1)
    for kind in ("cxr", "labs", "notes"):
        assert train_main([kind, "--data", str(data), "--config", "tiny", "--out", str(w / kind), "--epochs", "1"]) == 0
    assert train_main(["fused", "--data", str(data), "--config", "tiny", "--out", str(w / "fused"), "--encoders", str(w),
                       "--epochs", "2", "--cache", str(root / "cache")]) == 0
    assert train_main(["student_labs", "--data", str(data), "--config", "tiny", "--out", str(w / "student_labs"),
                       "--epochs", "1", "--teacher", str(w / "fused"), "--encoders", str(w), "--cache", str(root / "cache")]) == 0
    return data, w


def test_training_writes_cards_that_say_what_they_are(tiny):
    _, w = tiny
    fused = json.loads((w / "fused" / "card.json").read_text())
    assert fused["kind"] == "fused" and fused["config"]["strategy"] == "irene"
    assert set(fused["training"]["encoders"]) == {"cxr", "labs", "notes"}
    assert "test_complete_cases" in fused["metrics"] and len(fused["biases"]) == 7
    assert "synthetic" in fused["data_description"]
    student = json.loads((w / "student_labs" / "card.json").read_text())
    assert student["training"]["distilled_from"] == fused["model_id"] and student["target"] == "diagnoses"


@pytest.fixture(autouse=True)
def _forget_tiny_tools():
    """The tools built on the tiny weights must not outlive the test: tools.get caches by name."""
    yield
    from mmdx import tools

    tools.get.cache_clear()


def _tools(w, monkeypatch):
    from mmdx import tools
    from mmdx.core import registry
    from mmdx.tools.fused import FusedTool, StudentLabsTool

    for cls in (tools.CxrTool, tools.LabsTool, tools.NotesTool, StudentLabsTool):
        monkeypatch.setitem(registry._FACTORIES, cls.name, (lambda c: lambda: c(w / c.name))(cls))
    monkeypatch.setitem(registry._FACTORIES, "fused", lambda: FusedTool(w / "fused"))
    tools.get.cache_clear()
    return tools


def test_fused_tool_answers_any_subset_from_python_without_running_an_encoder_twice(tiny, monkeypatch):
    from mmdx.core.case import Modality
    from mmdx.core.errors import ModalityAbsent
    from mmdx.core.tool import CaseInput, FusedInput
    from mmdx.data.cohort import iter_cases
    from mmdx.tools.runner import InProcessRunner
    from mmdx.tools.schedule import run_with_dependencies

    data, w = tiny
    tools = _tools(w, monkeypatch)
    case = next(c for c in iter_cases(data, "test") if len(c.modalities) == 3)
    full = tools.get("fused")(CaseInput(case=case))  # no upstream: the tool runs the encoders itself
    assert full.target == "diagnoses" and len(full.scores) == 7 and not full.notes
    for drop in (Modality.cxr, Modality.labs, Modality.notes):
        out = tools.get("fused")(FusedInput(case=case.without(drop)))
        assert out.scores and out.notes == (f"{drop.value} missing: handled by the model's 'dropout' method",)
    with pytest.raises(ModalityAbsent, match="2 or more"):
        tools.get("fused")(FusedInput(case=case.without(Modality.cxr, Modality.labs)))

    calls = []
    runner = InProcessRunner()
    real = runner._run_tool
    runner._run_tool = lambda name, inputs: calls.append(name) or real(name, inputs)
    res = run_with_dependencies(runner, case, ["labs", "fused"])
    assert sorted(calls) == ["cxr", "fused", "labs", "notes"]  # each encoder once, then the fused model
    assert res["fused"].scores == full.scores  # same answer as the self-encoding path
    again = run_with_dependencies(runner, case, ["fused"], previous=res)  # a later round reuses the encodings
    assert sorted(calls) == ["cxr", "fused", "fused", "labs", "notes"] and again["fused"].scores == full.scores
    calls.clear()
    no_film = run_with_dependencies(runner, case.without(Modality.cxr), ["fused"])
    assert sorted(calls) == ["fused", "labs", "notes"] and sorted(no_film) == ["fused", "labs", "notes"]
    assert no_film["fused"].notes == ("cxr missing: handled by the model's 'dropout' method",)


def test_student_tool_and_the_differential_choose_by_measured_numbers(tiny, monkeypatch):
    from mmdx.agent.aggregate import choose_sources
    from mmdx.core.case import Modality
    from mmdx.core.tool import CaseInput
    from mmdx.data.cohort import iter_cases

    data, w = tiny
    tools = _tools(w, monkeypatch)
    case = next(c for c in iter_cases(data, "test") if c.measurements).without(Modality.cxr, Modality.notes)
    student = tools.get("student_labs")(CaseInput(case=case))
    model = tools.get("labs")(CaseInput(case=case))
    chosen, how = choose_sources([student, model])
    best = max((student, model), key=lambda o: o.provenance.test_macro_auroc)
    assert chosen == [best] and "test macro AUROC" in how


def test_fused_tool_refuses_tokens_from_other_encoder_weights(tiny, monkeypatch):
    from mmdx.core.errors import WeightsError
    from mmdx.core.tool import CaseInput, Encoding, FusedInput
    from mmdx.data.cohort import iter_cases

    data, w = tiny
    tools = _tools(w, monkeypatch)
    case = next(c for c in iter_cases(data, "test") if len(c.modalities) == 3)
    ups = {m: tools.get(m)(CaseInput(case=case, with_encoding=True)) for m in ("cxr", "labs", "notes")}
    forged = ups["labs"].model_copy(update={"encoding": Encoding("labs", "f" * 64, ups["labs"].encoding.tokens)})
    with pytest.raises(WeightsError, match="retrain"):
        tools.get("fused")(FusedInput(case=case, upstream={**ups, "labs": forged}))


@pytest.mark.ray
def test_the_fused_tool_runs_through_ray_actors(ray_session, tiny, monkeypatch):
    from mmdx.core.tool import CaseInput
    from mmdx.data.cohort import iter_cases
    from mmdx.tools.ray_runner import RayRunner
    from mmdx.tools.schedule import run_with_dependencies
    from mmdx.tools.weights_factory import WeightsFactory

    data, w = tiny
    tools = _tools(w, monkeypatch)
    case = next(c for c in iter_cases(data, "test") if len(c.modalities) == 3)
    local = tools.get("fused")(CaseInput(case=case))
    runner = RayRunner(tool_names=["cxr", "labs", "notes", "fused"], tool_factory=WeightsFactory(w), request_timeout_s=120)
    try:
        res = run_with_dependencies(runner, case, ["fused"], timeout_s=120)
    finally:
        runner.close()
    assert set(res) == {"cxr", "labs", "notes", "fused"}
    assert np.allclose([s.probability for s in res["fused"].scores], [s.probability for s in local.scores], atol=1e-5)
