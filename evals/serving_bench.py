"""Serving benchmark: what Ray actors with dynamic batching buy over running tools in-process, and
the hand-built actor runner against Ray Serve.

Five ways to answer the same `n` chest X-ray requests, side by side in one run, on the same inputs:

  (a) in-process, sequential: one request per forward pass
  (b) in-process, batched: `max_batch_size` requests per forward pass (the limit)
  (c) Ray actors, no batching (max_batch_size=1), `clients` threads sending one request at a time
  (d) Ray actors, dynamic batching, the same clients (the hand-built RayRunner)
  (e) Ray Serve deployments batched by `@serve.batch` (ServeRunner), the same tool, batch limit,
      wait, CPU share and clients as (d); left out with `serve=False` (`--no-serve`)

and, to say where (d)'s figure comes from: (d) with the actor's pipeline off (`d_ray_unpipelined`:
each batch decoded then run, as in (b)), (b) with the same pipeline as the actors
(`b_inprocess_pipelined`: batch k+1 decoded in a second thread while batch k runs), and (b) at the
batch size the actors reached (`b_same_batch`). The actors pipeline by default: (d)/(b) compares
the runner with the plain batched loop the issue names; (d)/(b_pipelined) is the runner's own cost.

Latency is from a request's issue to its answer (closed loop: each client sends its next request
when the last is answered; in (b) a batch is one issue). Then a second figure: one case needing
three tools (a demo case with an X-ray, labs and a note, through the real cxr, labs and notes tools),
the wall time of the parallel fan-out against the slowest single tool.

The tool is the real cxr tool, on its trained weights when they load, otherwise on stand-in
weights: the `cxr_small` architecture at random init (and the fan-out uses three stand-ins of
different sizes). The report says which. Images are synthetic PNGs written to a temp dir. `device` (default: cuda where there is
one) places the in-process tools and, through a GPU share per actor, the Ray actors; on cuda the
forward passes run in bf16 autocast.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np

from mmdx.core.case import ChestXray, Demographics, Modality, PatientCase
from mmdx.core.extras import require
from mmdx.core.labels import IMAGING_FINDINGS
from mmdx.core.tool import CaseInput, ClassifierOutput

log = logging.getLogger(__name__)


# ---- the stand-in weights (used when no trained cxr weights are installed) --------------------------

def standin_cxr_weights(root: Path, size: str = "small", overrides: dict | None = None) -> Path:
    """A CxrViT checkpoint at random init (seed 0) for the real cxr tool to load: config `size`
    with `overrides`, thresholds 0.5, temperatures 1. The same digest wherever it is written."""
    import torch

    from mmdx.models.build import build_model, load_config
    from mmdx.models.card import ModelCard, save_checkpoint

    config = load_config("cxr", size, **(overrides or {}))
    torch.manual_seed(0)
    model = build_model("cxr", config)
    n = len(IMAGING_FINDINGS)
    card = ModelCard(model_id="", kind="cxr", config_name=size + ("+" + str(overrides) if overrides else ""),
                     config=dataclasses.asdict(config), labels=list(IMAGING_FINDINGS), target="imaging_findings",
                     thresholds=[0.5] * n, temperatures=[1.0] * n,
                     data_description=f"none: random init (seed 0), a stand-in for benchmarks, "
                                      f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params")
    save_checkpoint(root, card, model.state_dict())
    return root


@dataclass
class StandInFactory:
    """Picklable `tool_factory(name, device=)` for the runners: the real cxr tool on stand-in
    weights, tool name -> (config size, overrides). The weights are written once per process (in
    the worker that builds the tool, so it works on any machine of a cluster)."""

    specs: dict[str, tuple[str, dict]] = field(default_factory=lambda: {"cxr": ("small", {})})

    def __call__(self, name: str, device: str = "cpu"):
        from mmdx.tools.cxr import CxrTool

        size, overrides = self.specs[name]
        key = (size, tuple(sorted(overrides.items())))
        if key not in _STANDIN_DIRS:
            _STANDIN_DIRS[key] = standin_cxr_weights(Path(tempfile.mkdtemp(prefix="mmdx-standin-")), size, overrides)
        return CxrTool(weights_dir=_STANDIN_DIRS[key], device=device)


_STANDIN_DIRS: dict[tuple, Path] = {}  # stand-in checkpoints written in this process


FANOUT_SPECS = {  # three tools of different cost for the fan-out figure
    "cxr_tiny": ("tiny", {}),
    "cxr_small": ("small", {}),
    "cxr_deep": ("small", {"n_layer": 8}),
}


def real_cxr_available() -> tuple[bool, str]:
    """Whether the trained cxr model loads; and why not."""
    try:
        from mmdx.models.inference import load_model

        model = load_model("cxr", device="cpu")
        return True, f"trained cxr model {model.card.model_id}"
    except Exception as e:  # noqa: BLE001 - any failure to load means: use the stand-in, and say why
        return False, f"{type(e).__name__}: {str(e)[:200]}"


# ---- inputs ---------------------------------------------------------------------------------------

def write_cases(root: Path, n_requests: int, n_images: int = 32, side: int = 256, seed: int = 0) -> list[CaseInput]:
    """`n_requests` cases over `n_images` synthetic grayscale PNGs (smooth noise + a bright blob)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    paths = []
    for k in range(n_images):
        low = rng.normal(size=(side // 16, side // 16))
        img = np.kron(low, np.ones((16, 16)))  # (side, side) blocky field
        cy, cx, r = rng.uniform(0.3, 0.7, size=2).tolist() + [rng.uniform(0.05, 0.2)]
        img = img + 3 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)) + 0.3 * rng.normal(size=img.shape)
        img = (255 * (img - img.min()) / (img.max() - img.min())).astype(np.uint8)
        p = root / f"img{k:03d}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    return [
        CaseInput(case=PatientCase(case_id=f"bench-{i}", demographics=Demographics(age=40 + i % 50),
                                   cxr=ChestXray(path=str(paths[i % n_images]), view="PA")))
        for i in range(n_requests)
    ]


# ---- measurement ----------------------------------------------------------------------------------

def _summary(latencies_s: list[float], wall_s: float, n: int, ok: int) -> dict:
    lat = np.asarray(latencies_s) * 1000
    return {
        "requests": n, "ok": ok, "wall_s": round(wall_s, 3), "throughput_rps": round(n / wall_s, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
    }


def bench_sequential(tool, inputs: list[CaseInput]) -> dict:
    lats, ok = [], 0
    t0 = time.perf_counter()
    for inp in inputs:
        t = time.perf_counter()
        (out,) = tool.batch([inp])
        lats.append(time.perf_counter() - t)
        ok += isinstance(out, ClassifierOutput)
    return _summary(lats, time.perf_counter() - t0, len(inputs), ok)


def bench_batched(tool, inputs: list[CaseInput], batch_size: int) -> dict:
    lats, ok = [], 0
    t0 = time.perf_counter()
    for s in range(0, len(inputs), batch_size):
        chunk = inputs[s:s + batch_size]
        t = time.perf_counter()
        outs = tool.batch(chunk)
        lats += [time.perf_counter() - t] * len(chunk)
        ok += sum(isinstance(o, ClassifierOutput) for o in outs)
    return _summary(lats, time.perf_counter() - t0, len(inputs), ok)


def bench_pipelined(tool, inputs: list[CaseInput], batch_size: int) -> dict:
    """(b) with the actors' pipeline: batch k+1 is prepared in a second thread while batch k runs."""
    from concurrent.futures import ThreadPoolExecutor

    chunks = [inputs[s:s + batch_size] for s in range(0, len(inputs), batch_size)]
    lats, ok = [], 0
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as prep:
        issued = [time.perf_counter()]
        nxt = prep.submit(tool.prepare, chunks[0])
        for k, chunk in enumerate(chunks):
            prepared = nxt.result()
            if k + 1 < len(chunks):
                issued.append(time.perf_counter())
                nxt = prep.submit(tool.prepare, chunks[k + 1])
            outs = tool.infer(chunk, prepared)
            lats += [time.perf_counter() - issued[k]] * len(chunk)
            ok += sum(isinstance(o, ClassifierOutput) for o in outs)
    return _summary(lats, time.perf_counter() - t0, len(inputs), ok)


def bench_clients(runner, tool: str, inputs: list[CaseInput], clients: int, timeout_s: float) -> dict:
    """`clients` threads, each sending its share of `inputs` one request at a time."""
    shares = [inputs[c::clients] for c in range(clients)]
    lats: list[list[float]] = [[] for _ in range(clients)]
    oks = [0] * clients
    barrier = threading.Barrier(clients + 1)

    def client(c: int) -> None:
        barrier.wait()
        for inp in shares[c]:
            t = time.perf_counter()
            (out,) = runner.run([(tool, inp)], timeout_s=timeout_s)
            lats[c].append(time.perf_counter() - t)
            oks[c] += isinstance(out, ClassifierOutput)

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for th in threads:
        th.start()
    barrier.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    return _summary([x for xs in lats for x in xs], wall, len(inputs), sum(oks))


def _actor_delta(before: dict, after: dict, wall_s: float, n_actors: int = 1) -> dict:
    """What the actors did during one mode: batches, remote calls, and the model's time on batches
    (busy fraction: the mean over the `n_actors` actors)."""
    sizes = after["batch_sizes"][len(before["batch_sizes"]):]
    busy = after["busy_s"] - before["busy_s"]
    prep = after["prepare_s"] - before["prepare_s"]
    n = sum(sizes)
    return {"mean_batch": round(float(np.mean(sizes)), 2) if sizes else 0.0, "max_batch": max(sizes, default=0),
            "remote_calls": after["calls"] - before["calls"],
            "actor_busy_fraction": round(busy / wall_s / max(1, n_actors), 3) if wall_s else 0.0,
            "actor_ms_per_request": round(1000 * busy / n, 3) if n else 0.0,
            "prepare_ms_per_request": round(1000 * prep / n, 3) if n else 0.0}


def _median_mode(rows: list[dict]) -> dict:
    """Per-key median over rounds of the numbers; the rest from the first round."""
    out = dict(rows[0])
    for k, v in rows[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = round(float(statistics.median(r[k] for r in rows)), 3)
    return out


def bench_fanout(runner, tools: list[str], inp: CaseInput, reps: int, timeout_s: float) -> dict:
    """Median wall time of one case through `tools` at once vs each tool alone."""
    single: dict[str, list[float]] = {t: [] for t in tools}
    fan: list[float] = []
    runner.run([(t, inp) for t in tools], timeout_s=timeout_s)  # untimed: models load, caches warm
    for _ in range(reps):
        for t in tools:
            s = time.perf_counter()
            runner.run([(t, inp)], timeout_s=timeout_s)
            single[t].append(time.perf_counter() - s)
        s = time.perf_counter()
        outs = runner.run([(t, inp) for t in tools], timeout_s=timeout_s)
        fan.append(time.perf_counter() - s)
        if not all(isinstance(o, ClassifierOutput) for o in outs):
            raise RuntimeError(f"fan-out returned failures: {[o for o in outs if not isinstance(o, ClassifierOutput)]}")
    med = {t: statistics.median(v) * 1000 for t, v in single.items()}
    fan_ms = statistics.median(fan) * 1000
    slowest = max(med.values())
    return {
        "tools": tools, "reps": reps,
        "single_ms": {t: round(v, 2) for t, v in med.items()},
        "slowest_single_ms": round(slowest, 2), "sum_single_ms": round(sum(med.values()), 2),
        "fanout_ms": round(fan_ms, 2), "fanout_over_slowest": round(fan_ms / slowest, 2),
        "fanout_over_sum": round(fan_ms / sum(med.values()), 2),
    }


@dataclass
class BenchConfig:
    requests: int = 256  # requests per mode
    clients: int = 8  # concurrent client threads in the Ray modes
    max_batch_size: int = 32  # batch size in (b) and the batching cap in (d)
    max_wait_ms: float = 5  # how long an actor waits to fill a batch in (d)
    pool_size: int = 1  # actors per tool
    fanout_reps: int = 15  # repetitions of the fan-out figure (median reported)
    torch_threads: int = 1  # intra-op threads, in-process and in each actor
    prepare_threads: int | None = None  # threads that prepare (decode) inputs in each actor (None: the runner's default)
    timeout_s: float = 120  # per-request timeout in the Ray modes
    address: str | None = None  # Ray cluster to join (default: a local Ray)
    warmup: int = 16  # untimed requests per mode before timing
    rounds: int = 3  # rounds of every mode, interleaved; medians reported
    device: str | None = None  # "cuda" or "cpu" (default: cuda where available)
    serve: bool = True  # also run (e): the same requests through Ray Serve deployments (the [serve] extra)


def run_bench(cfg: BenchConfig) -> dict:
    import torch

    ray = require("ray", "ray")

    from mmdx.tools.runner import InProcessRunner
    from mmdx.tools.serving.cluster import ensure_ray
    from mmdx.tools.serving.ray_runner import RayRunner

    torch.set_num_threads(cfg.torch_threads)
    started = ensure_ray(cfg.address)  # one Ray for every mode
    try:
        return _run_bench(cfg, RayRunner, InProcessRunner, serve_runner_class(cfg))
    finally:
        if started:
            ray.shutdown()


def resolve_device(device: str | None) -> str:
    import torch

    from mmdx.models.inference import default_device

    if device is None:
        return default_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for, but torch sees no CUDA device (torch {torch.__version__})")
    return device


def three_modality_case(root: Path) -> CaseInput:
    """A committed demo case with an X-ray, labs and a note (copied under `root`)."""
    from mmdx.data.demo_cases import copy_demo

    for p in sorted(x for x in copy_demo(root) if x.suffix == ".json"):
        case = PatientCase.load(p)
        if {Modality.cxr, Modality.labs, Modality.notes} <= case.modalities:
            return CaseInput(case=case)
    raise FileNotFoundError("no demo case has an X-ray, labs and a note")


def machine_info(device: str) -> dict:
    import torch

    info = {"cpus": os.cpu_count(), "device": device, "torch": torch.__version__,
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _actor_shares(n_actors: int, device: str) -> tuple[float, float]:
    """(CPUs, GPUs) per actor so that `n_actors` actors fit the running Ray cluster at once."""
    ray = require("ray", "ray")

    res = ray.cluster_resources()
    cpus = min(0.25, float(res.get("CPU", 1.0)) / max(1, n_actors))
    gpus = float(res.get("GPU", 0.0)) / max(1, n_actors) if device.startswith("cuda") else 0.0
    return round(cpus, 4), round(min(1.0, gpus), 4)


def serve_runner_class(cfg: BenchConfig):
    """ServeRunner for mode (e), or None when the config leaves it out. Asked for and not
    installed: MissingExtra, naming the [serve] extra."""
    if not cfg.serve:
        return None
    from mmdx.tools.serving.serve_runner import ServeRunner

    return ServeRunner


def _run_bench(cfg: BenchConfig, RayRunner, InProcessRunner, ServeRunner=None) -> dict:
    device = resolve_device(cfg.device)
    num_gpus = None if device.startswith("cuda") else 0.0  # None: each actor asks for a share of the GPUs
    real, why = real_cxr_available()
    if real:
        from mmdx.tools.cxr import CxrTool

        tool, factory, model_note = CxrTool(device=device), None, why
    else:
        factory = StandInFactory()
        tool = factory("cxr", device=device)
        model_note = f"the cxr tool on stand-in weights {tool.model.card.model_id}: {tool.model.card.data_description} " \
                     f"(no trained cxr weights: {why})"
    log.info("model: %s on %s", model_note, device)

    report: dict = {"model": model_note, "real_weights": real, "config": dataclasses.asdict(cfg),
                    "machine": machine_info(device), "placement": {}}
    with tempfile.TemporaryDirectory(prefix="mmdx-bench-") as tmp:
        inputs = write_cases(Path(tmp), cfg.requests)
        warm = inputs[:cfg.warmup]
        tool.batch(warm)
        runners = {}
        ray_modes = [("c_ray_unbatched", RayRunner, 1, True), ("d_ray_batched", RayRunner, cfg.max_batch_size, True),
                     ("d_ray_unpipelined", RayRunner, cfg.max_batch_size, False)]
        if ServeRunner is not None:  # (e): Ray Serve, the same tool, batch limit, wait and clients as (d)
            ray_modes.append(("e_serve_batched", ServeRunner, cfg.max_batch_size, True))
        # every mode's actors live at once (the rounds interleave them): split the cluster's CPUs and
        # GPUs over all of them, or the last ones never get scheduled (3 modes x 4 actors x 0.25 GPU > 1 GPU)
        cpus_each, gpus_each = _actor_shares(len(ray_modes) * cfg.pool_size, device)
        report["placement"]["shares"] = {"num_cpus_per_actor": cpus_each, "num_gpus_per_actor": gpus_each}
        try:
            for key, Runner, mbs, pipe in ray_modes:
                runners[key] = Runner(tool_names=["cxr"], pool_sizes={"cxr": cfg.pool_size}, max_batch_size=mbs,
                                      max_wait_ms=cfg.max_wait_ms, address=cfg.address,
                                      request_timeout_s=cfg.timeout_s, tool_factory=factory,
                                      torch_threads=cfg.torch_threads, num_cpus_per_actor=cpus_each,
                                      num_gpus_per_actor=gpus_each, prepare_threads=cfg.prepare_threads,
                                      pipeline=pipe)
                report["placement"][key] = runners[key].warmup()["cxr"]
                bench_clients(runners[key], "cxr", warm, cfg.clients, cfg.timeout_s)
            # Rounds interleave the modes, so a drift in the machine's speed (a shared VM's neighbours,
            # clock changes) falls on every mode alike; each figure is the median over rounds. The
            # Ray modes take turns going first (round k starts at the k-th), so none always follows
            # the same neighbour.
            rounds: list[dict[str, dict]] = []
            order = list(runners)
            for k in range(max(1, cfg.rounds)):
                r: dict[str, dict] = {"a_inprocess_sequential": bench_sequential(tool, inputs),
                                      "b_inprocess_batched": bench_batched(tool, inputs, cfg.max_batch_size),
                                      "b_inprocess_pipelined": bench_pipelined(tool, inputs, cfg.max_batch_size)}
                for key in order[k % len(order):] + order[:k % len(order)]:
                    runner = runners[key]
                    before = runner.actor_stats()["cxr"]
                    r[key] = bench_clients(runner, "cxr", inputs, cfg.clients, cfg.timeout_s)
                    r[key].update(_actor_delta(before, runner.actor_stats()["cxr"], r[key]["wall_s"], cfg.pool_size))
                # in-process at the batch size the Ray actors reached: what (d) costs beyond its batch size
                same = max(1, int(round(r["d_ray_batched"]["mean_batch"])))
                r["b_same_batch"] = bench_batched(tool, inputs, same) | {"batch": same}
                rounds.append(r)
        finally:
            for runner in runners.values():
                runner.close()
        keys = [k for k in ("a_inprocess_sequential", "b_inprocess_batched", "b_inprocess_pipelined", *order,
                            "b_same_batch")]
        modes = {k: _median_mode([r[k] for r in rounds]) for k in keys}
        report["modes"] = modes
        report["rounds"] = rounds

        def ratio(x: str, y: str) -> float:  # median over rounds of the per-round ratio
            return round(statistics.median(r[x]["throughput_rps"] / r[y]["throughput_rps"] for r in rounds), 2)

        report["ratios"] = {"d_over_b": ratio("d_ray_batched", "b_inprocess_batched"),
                            "d_over_a": ratio("d_ray_batched", "a_inprocess_sequential"),
                            "b_over_a": ratio("b_inprocess_batched", "a_inprocess_sequential"),
                            "d_over_c": ratio("d_ray_batched", "c_ray_unbatched"),
                            "d_over_b_pipelined": ratio("d_ray_batched", "b_inprocess_pipelined"),
                            "d_unpipelined_over_b": ratio("d_ray_unpipelined", "b_inprocess_batched"),
                            "b_pipelined_over_b": ratio("b_inprocess_pipelined", "b_inprocess_batched"),
                            "d_over_b_same_batch": ratio("d_ray_batched", "b_same_batch"),
                            "b_same_batch_over_b": ratio("b_same_batch", "b_inprocess_batched")}
        if "e_serve_batched" in modes:
            report["ratios"] |= {"e_over_d": ratio("e_serve_batched", "d_ray_batched"),
                                 "e_over_b": ratio("e_serve_batched", "b_inprocess_batched"),
                                 "e_over_d_unpipelined": ratio("e_serve_batched", "d_ray_unpipelined")}

        if real:  # the real three tools on a demo case that has all three modalities
            from mmdx.core import registry
            from mmdx import tools as _tools  # noqa: F401 - fills the registry

            names, fan_factory = ["cxr", "labs", "notes"], None
            fan_input = three_modality_case(Path(tmp) / "demo")
            built = {n: registry.tool_class(n)(device=device) for n in names}
        else:
            names, fan_factory = list(FANOUT_SPECS), StandInFactory(dict(FANOUT_SPECS))
            fan_input = inputs[0]
            built = {n: fan_factory(n, device=device) for n in names}
        fan_runner = RayRunner(tool_names=names, max_wait_ms=cfg.max_wait_ms, address=cfg.address,
                               request_timeout_s=cfg.timeout_s, tool_factory=fan_factory,
                               torch_threads=cfg.torch_threads, num_gpus_per_actor=num_gpus)
        try:
            report["placement"]["fanout_ray"] = fan_runner.warmup()
            report["fanout_ray"] = bench_fanout(fan_runner, names, fan_input, cfg.fanout_reps, cfg.timeout_s)
        finally:
            fan_runner.close()
        inproc = InProcessRunner(tool_factory=built.__getitem__)
        try:
            report["fanout_inprocess"] = bench_fanout(inproc, names, fan_input, cfg.fanout_reps, cfg.timeout_s)
        finally:
            inproc.close()
        if real:
            report["fanout_model"] = (f"the real cxr, labs and notes tools on demo case {fan_input.case.case_id}: "
                                      + ", ".join(f"{n}={built[n].model.card.model_id}" for n in names))
        else:
            report["fanout_model"] = "the cxr tool on three stand-in CxrViT checkpoints at random init: " + ", ".join(
                f"{n}={built[n].model.card.model_id}" for n in names)
    report["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def format_table(report: dict) -> str:
    """The report as a readable table."""
    m = report["machine"]
    lines = [f"model: {report['model']}",
             f"machine: {m['cpus']} CPUs, device {m.get('device', 'cpu')}{' (' + m['gpu'] + ')' if m.get('gpu') else ''}, "
             f"load average {m['load_avg_at_start']} at start, {m['load_avg_at_end']} at end",
             f"medians over {len(report.get('rounds', [])) or 1} interleaved rounds of {report['config']['requests']} "
             f"requests; Ray modes: {report['config']['clients']} clients",
             "", f"{'mode':<26}{'req/s':>9}{'p50 ms':>10}{'p99 ms':>10}{'batch':>8}{'calls':>7}{'busy':>7}{'ms/req':>8}{'ok':>9}"]
    for key, m in report["modes"].items():
        mb = m.get("mean_batch", m.get("batch", ""))
        busy = f"{m['actor_busy_fraction']:.0%}" if "actor_busy_fraction" in m else ""
        lines.append(f"{key:<26}{m['throughput_rps']:>9.1f}{m['p50_ms']:>10.2f}{m['p99_ms']:>10.2f}{str(mb):>8}"
                     f"{str(m.get('remote_calls', '')):>7}{busy:>7}{str(m.get('actor_ms_per_request', '')):>8}"
                     f"{int(m['ok']):>5}/{int(m['requests'])}")
    lines.append("(batch: mean batch the actor ran; calls: remote calls it received; busy: share of the time its "
                 "model was running a batch (pipelined: tool.infer; else tool.batch, decoding included); ms/req: "
                 "that time per request)")
    r = report["ratios"]
    lines += ["", "throughput ratios: " + ", ".join(f"{k.replace('_over_', '/')} = {v}" for k, v in r.items())]
    for key in ("fanout_ray", "fanout_inprocess"):
        f = report[key]
        singles = ", ".join(f"{t} {ms:.1f}" for t, ms in f["single_ms"].items())
        lines += ["", f"{key}: one case, {len(f['tools'])} tools (median of {f['reps']}): fan-out {f['fanout_ms']:.1f} ms; "
                      f"alone: {singles} ms; fan-out / slowest = {f['fanout_over_slowest']}, "
                      f"fan-out / sum = {f['fanout_over_sum']}"]
    lines.append(f"fan-out tools: {report['fanout_model']}")
    return "\n".join(lines)
