"""`--runner ray`: a workflow's cases fan out through real Ray actors (several in flight) and store
exactly what the in-process run stores."""
from __future__ import annotations

import json
import sys

import pytest

ray = pytest.importorskip("ray")

import agent_fakes  # noqa: E402
from mmdx.evals.workflow_run import run_workflow  # noqa: E402
from mmdx.tools.ray_runner import RayRunner  # noqa: E402

from test_workflows import _cases, _fake_runner, _wf  # noqa: E402

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
ray.cloudpickle.register_pickle_by_value(agent_fakes)
pytestmark = pytest.mark.ray


class FakeFactory:
    def __call__(self, name, device=None):
        return agent_fakes.FAKE_TOOLS[name]()


def _scores(run_dir):
    out = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        out[r["key"]] = {n: v["scores"] for n, v in r["results"].items()}
    return out


def test_ray_runner_fans_cases_out_and_matches_in_process(tmp_path, ray_session):
    data = _cases(tmp_path / "data", n=12)
    wf = _wf(data, [{"name": "tools", "kind": "tools", "tools": ["labs", "notes"]}])
    run_workflow(wf, tmp_path / "local", inner_runner=_fake_runner(), progress=False)
    runner = RayRunner(tool_names=["labs", "notes"], tool_factory=FakeFactory(), max_wait_ms=5)
    run_workflow(wf, tmp_path / "ray", runner="ray", inner_runner=runner, progress=False)
    local, remote = _scores(tmp_path / "local"), _scores(tmp_path / "ray")
    assert len(remote) == 12 and remote == local
