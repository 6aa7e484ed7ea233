"""The serving benchmark's stand-in: the real cxr tool on random-init weights, used where no trained
cxr weights are installed (the benchmark itself runs in the slow tier: test_ray_runner.py)."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")

from mmdx.core.tool import ClassifierOutput  # noqa: E402
from mmdx.evals.bench_inputs import StandInFactory, standin_cxr_weights, write_cases  # noqa: E402
from mmdx.models.card import load_card  # noqa: E402
from mmdx.tools.cxr import CxrTool  # noqa: E402


def test_stand_in_is_the_real_cxr_tool_on_seeded_random_weights(tmp_path):
    inputs = write_cases(tmp_path, 3, n_images=2, side=64)
    a = StandInFactory()("cxr")
    b = StandInFactory({"cxr_deep": ("small", {"n_layer": 8})})("cxr_deep")
    assert isinstance(a, CxrTool) and isinstance(b, CxrTool)
    outs = a.batch(inputs)
    assert all(isinstance(o, ClassifierOutput) for o in outs)
    assert "random init" in a.model.card.data_description and outs[0].provenance.model_id == a.model.card.model_id
    assert a.model.card.weights_sha256 != b.model.card.weights_sha256  # two architectures, two checkpoints
    # written afresh elsewhere (as in another worker): the same seed, the same weights
    again = load_card(standin_cxr_weights(tmp_path / "elsewhere"))
    assert again.weights_sha256 == a.model.card.weights_sha256
