"""GPU check: the tool actors on CUDA, bf16 against fp32, and the serving benchmark on the GPU.

    mmdx bench gpu --reference ref.json --out gpu.json     # on a machine with an NVIDIA GPU
    mmdx bench gpu --make-reference ref.json               # anywhere: the fp32 CPU outputs to compare

What it checks, in one run (about two minutes on one H200):

1. precision: the real cxr, labs and notes tools on the committed demo cases (and, for cxr, 64
   synthetic radiographs) in fp32 on the CPU and in bf16 autocast on the GPU, in this process:
   largest probability difference, and how often the thresholded decisions and the top label agree.
   With `--reference`, also against fp32 outputs made elsewhere (the shipped CPU path), after
   checking the inputs are byte-identical.
2. placement: a RayRunner over the three tools on a local Ray that sees the GPU: each actor asks
   for a fraction of it, reports the device and GPU ids it got, and its outputs must match the
   in-process GPU outputs. Then one actor is killed mid-batch: every request still completes or
   fails typed.
3. serving: `mmdx bench serving` on the GPU (in-process tool on cuda, actors with a GPU share), at
   8 clients and one actor, and at 32 clients and four actors.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from mmdx.core.case import Modality, PatientCase
from mmdx.core.extras import require
from mmdx.core.tool import CaseInput, ClassifierOutput

log = logging.getLogger(__name__)

TOOLS = ("cxr", "labs", "notes")
_NEEDS = {"cxr": Modality.cxr, "labs": Modality.labs, "notes": Modality.notes}


def check_inputs(root: Path, extra: list[PatientCase] = ()) -> dict[str, list[CaseInput]]:
    """Per tool, the inputs of the check: demo and `extra` cases with the modality (+ 64 synthetic
    radiographs for cxr)."""
    from mmdx.data.demo_cases import copy_demo
    from mmdx.evals.bench_inputs import write_cases

    demo = [PatientCase.load(p) for p in sorted(copy_demo(root / "demo")) if p.suffix == ".json"] + list(extra)
    bench_dir = root / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    synthetic = write_cases(bench_dir, 64)
    out = {}
    for name in TOOLS:
        inputs = [CaseInput(case=c) for c in demo if _NEEDS[name] in c.modalities]
        out[name] = inputs + (synthetic if name == "cxr" else [])
    return out


def input_digest(inp: CaseInput) -> str:
    """The case's content digest, with the radiograph's bytes rather than its (temporary) path."""
    h = hashlib.sha256(inp.case.model_dump_json(exclude={"cxr"}).encode())
    if inp.case.cxr is not None:
        h.update(inp.case.image_path().read_bytes())
    return h.hexdigest()


def probabilities(outs) -> dict[str, list[float] | str]:
    return {o.case_id: ([s.probability for s in o.scores] if isinstance(o, ClassifierOutput) else f"failed: {o}")
            for o in outs}


def run_tool(name: str, device: str, inputs: list[CaseInput]) -> list:
    from mmdx.core import registry
    from mmdx import tools  # noqa: F401 - fills the registry

    tool = registry.tool_class(name)(device=device)
    return tool.batch(inputs)


def load_cases(folder: Path | None) -> list[PatientCase]:
    return [PatientCase.load(p) for p in sorted(Path(folder).glob("*.json"))] if folder else []


def export_cases(src: Path, dst: Path, n: int) -> list[PatientCase]:
    """The first `n` cases of `src` with labs or a note, written to `dst` without their X-ray (the
    images stay behind: the cxr part of the check uses the demo and synthetic radiographs)."""
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for p in sorted(Path(src).glob("*.json")):
        case = PatientCase.load(p).without(Modality.cxr)
        if case.modalities & {Modality.labs, Modality.notes}:
            (dst / p.name).write_text(case.to_json())
            out.append(case)
        if len(out) >= n:
            break
    return out


def make_reference(path: Path, cases: Path | None = None, n_cases: int = 200) -> dict:
    """fp32 CPU probabilities of every check input, with each input's digest. With `cases`, also
    the first `n_cases` of that folder, copied (without X-rays) to `<path>.cases/`."""
    extra = export_cases(cases, Path(f"{path}.cases"), n_cases) if cases else []
    with tempfile.TemporaryDirectory(prefix="mmdx-gpuref-") as tmp:
        inputs = check_inputs(Path(tmp), extra)
        ref = {name: {"digests": {i.case.case_id: input_digest(i) for i in inputs[name]},
                      "probs": probabilities(run_tool(name, "cpu", inputs[name]))} for name in TOOLS}
    path.write_text(json.dumps(ref, indent=1))
    return ref


def compare(a: dict, b: dict, thresholds: list[float] | None = None) -> dict:
    """Largest / mean |p_a - p_b| over cases both answered, and decision and top-label agreement."""
    both = [k for k in a if isinstance(a[k], list) and isinstance(b.get(k), list)]
    if not both:
        return {"n": 0}
    pa, pb = np.array([a[k] for k in both]), np.array([b[k] for k in both])
    diff = np.abs(pa - pb)
    res = {"n": len(both), "max_abs_diff": round(float(diff.max()), 5), "mean_abs_diff": round(float(diff.mean()), 6),
           "top_label_agree": round(float(np.mean(pa.argmax(1) == pb.argmax(1))), 4),
           "failed_only_in_one": sorted(set(k for k in a if isinstance(a[k], list)) ^ set(k for k in b if isinstance(b[k], list)))}
    if thresholds is not None:
        thr = np.asarray(thresholds)[None, :]
        res["decisions_agree"] = round(float(np.mean((pa >= thr) == (pb >= thr))), 4)
    return res


def _thresholds(outs) -> list[float] | None:
    for o in outs:
        if isinstance(o, ClassifierOutput):
            return [s.threshold for s in o.scores]
    return None


def check_precision(inputs: dict[str, list[CaseInput]], reference: dict | None,
                    device: str = "cuda") -> tuple[dict, dict]:
    report, gpu_probs = {}, {}
    for name in TOOLS:
        cpu = run_tool(name, "cpu", inputs[name])
        t0 = time.perf_counter()
        gpu = run_tool(name, device, inputs[name])
        entry = {"cases": len(inputs[name]), "gpu_first_batch_s": round(time.perf_counter() - t0, 2),
                 "gpu_provenance_device": sorted({o.provenance.device for o in gpu if isinstance(o, ClassifierOutput)}),
                 "on_device_vs_fp32_cpu_here": compare(probabilities(cpu), probabilities(gpu), _thresholds(cpu))}
        gpu_probs[name] = probabilities(gpu)
        if reference and name in reference:
            ref = reference[name]
            same = {i.case.case_id for i in inputs[name] if ref["digests"].get(i.case.case_id) == input_digest(i)}
            entry["reference_inputs_identical"] = f"{len(same)}/{len(inputs[name])}"
            keep = lambda d: {k: v for k, v in d.items() if k in same}  # noqa: E731
            entry["on_device_vs_reference_fp32"] = compare(keep(ref["probs"]), keep(gpu_probs[name]), _thresholds(cpu))
            entry["fp32_cpu_here_vs_reference_fp32"] = compare(keep(ref["probs"]), keep(probabilities(cpu)), _thresholds(cpu))
        report[name] = entry
    return report, gpu_probs


def check_placement(inputs: dict[str, list[CaseInput]], gpu_probs: dict) -> dict:
    ray = require("ray", "ray")

    from mmdx.tools.serving.ray_runner import RayRunner

    report: dict = {"cluster_resources": {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}}
    with RayRunner(tool_names=list(TOOLS), request_timeout_s=300) as runner:
        report["actors"] = runner.warmup(timeout_s=300)
        report["gpu_share_per_actor"] = runner.gpu_share
        requests = [(n, i) for n in TOOLS for i in inputs[n]]
        outs = runner.run(requests, timeout_s=300)
        by_tool = {n: [o for (m, _), o in zip(requests, outs) if m == n] for n in TOOLS}
        report["ray_vs_inprocess_gpu"] = {n: compare(gpu_probs.get(n, {}), probabilities(by_tool[n])) for n in TOOLS}
        report["ray_output_devices"] = sorted({o.provenance.device for o in outs if isinstance(o, ClassifierOutput)})

        # kill the cxr actor while it holds a batch: every request completes or fails typed, nothing hangs
        many = [("cxr", i) for i in inputs["cxr"]] * 4
        got: list = []
        th = threading.Thread(target=lambda: got.extend(runner.run(many, timeout_s=300)))
        th.start()
        time.sleep(0.05)
        runner.kill_actor("cxr", 0)
        th.join(timeout=330)
        kinds: dict[str, int] = {}
        for o in got:
            k = "ok" if isinstance(o, ClassifierOutput) else f"failed:{o.kind}"
            kinds[k] = kinds.get(k, 0) + 1
        report["kill_mid_batch"] = {"requests": len(many), "answered": len(got), "hung": th.is_alive(), "results": kinds,
                                    "actor_after_restart": runner.warmup(timeout_s=300)["cxr"]}
    return report


def _stage(report: dict, key: str, out: Path | None, fn, *args):
    """Run one stage into report[key]; a failing stage is recorded (type, message, traceback) and the
    next stages still run. The report so far is written to `out` after every stage."""
    import traceback

    t0 = time.perf_counter()
    try:
        report[key] = fn(*args)
    except Exception as e:  # noqa: BLE001 - a check must report every stage it could run
        log.exception("stage %s failed", key)
        report[key] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    report.setdefault("stage_s", {})[key] = round(time.perf_counter() - t0, 1)
    if out is not None:
        out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return report[key]


def run_check(reference: dict | None, requests: int = 256, device: str = "cuda",
              extra: list[PatientCase] = (), out: Path | None = None) -> dict:
    """The whole check. `device="cpu"` runs the same steps without a GPU (a dry run of this script)."""
    import torch

    ray = require("ray", "ray")

    from mmdx.evals.serving_bench import BenchConfig, _run_bench, machine_info
    from mmdx.tools.serving.cluster import ensure_ray
    from mmdx.tools.serving.ray_runner import RayRunner
    from mmdx.tools.runner import InProcessRunner

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("mmdx bench gpu: torch sees no CUDA device; nothing to check (--device cpu for a dry run)")
    report: dict = {"machine": machine_info(device) | {"ray": ray.__version__, "cuda": torch.version.cuda}}
    with tempfile.TemporaryDirectory(prefix="mmdx-gpu-") as tmp:
        inputs = check_inputs(Path(tmp), extra)
        precision = _stage(report, "precision", out, check_precision, inputs, reference, device)
        gpu_probs = precision[1] if isinstance(precision, tuple) else {}
        if isinstance(precision, tuple):
            report["precision"] = precision[0]
        started = ensure_ray(None)
        try:
            _stage(report, "placement", out, check_placement, inputs, gpu_probs)
            for label, cfg in (("serving_8_clients_1_actor", BenchConfig(requests=requests, clients=8, device=device, serve=False)),
                               ("serving_32_clients_4_actors", BenchConfig(requests=4 * requests, clients=32, serve=False,
                                                                          pool_size=4, device=device))):
                _stage(report, label, out, _run_bench, cfg, RayRunner, InProcessRunner)
        finally:
            if started:
                ray.shutdown()
    if out is not None:
        out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx bench gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--make-reference", metavar="FILE", help="write the fp32 CPU outputs of the check inputs and stop")
    p.add_argument("--reference", metavar="FILE", help="fp32 outputs made elsewhere to compare the GPU against "
                   "(its cases, if any, are read from FILE.cases/)")
    p.add_argument("--cases", metavar="DIR", help="with --make-reference: also use the first --n-cases cases of DIR")
    p.add_argument("--n-cases", type=int, default=200)
    p.add_argument("--requests", type=int, default=256, help="requests per serving mode (x4 at 32 clients)")
    p.add_argument("--out", metavar="FILE", help="write the JSON report here")
    p.add_argument("--device", default="cuda", help="cuda (default), or cpu for a dry run of the check itself")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.make_reference:
        ref = make_reference(Path(args.make_reference), Path(args.cases) if args.cases else None, args.n_cases)
        print(f"wrote {args.make_reference}: " + ", ".join(f"{n} {len(r['probs'])} inputs" for n, r in ref.items()))
        return 0
    reference = json.loads(Path(args.reference).read_text()) if args.reference else None
    extra = load_cases(Path(f"{args.reference}.cases")) if args.reference and Path(f"{args.reference}.cases").is_dir() else []
    report = run_check(reference, args.requests, args.device, extra, Path(args.out) if args.out else None)
    print(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
