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
different sizes). The report says which. Images are synthetic PNGs written to a temp dir
(bench_inputs.py); each mode is timed by bench_timing.py. `device` (default: cuda where there is
one) places the in-process tools and, through a GPU share per actor, the Ray actors; on cuda the
forward passes run in bf16 autocast.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mmdx.core.extras import require
from mmdx.evals.bench_inputs import FANOUT_SPECS, StandInFactory, real_cxr_available, three_modality_case, write_cases
from mmdx.evals.bench_timing import (actor_delta, bench_batched, bench_clients, bench_fanout, bench_pipelined,
                                     bench_sequential, median_mode)

log = logging.getLogger(__name__)


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
                    r[key].update(actor_delta(before, runner.actor_stats()["cxr"], r[key]["wall_s"], cfg.pool_size))
                # in-process at the batch size the Ray actors reached: what (d) costs beyond its batch size
                same = max(1, int(round(r["d_ray_batched"]["mean_batch"])))
                r["b_same_batch"] = bench_batched(tool, inputs, same) | {"batch": same}
                rounds.append(r)
        finally:
            for runner in runners.values():
                runner.close()
        keys = [k for k in ("a_inprocess_sequential", "b_inprocess_batched", "b_inprocess_pipelined", *order,
                            "b_same_batch")]
        modes = {k: median_mode([r[k] for r in rounds]) for k in keys}
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
             "", f"{'mode':<26}{'req/s':>9}{'p50 ms':>10}{'p99 ms':>10}{'batch':>8}{'calls':>7}{'busy':>7}{'ms/req':>8}"
                 f"{'cpu drv':>9}{'cpu wrk':>9}{'ok':>9}"]
    for key, m in report["modes"].items():
        mb = m.get("mean_batch", m.get("batch", ""))
        busy = f"{m['actor_busy_fraction']:.0%}" if "actor_busy_fraction" in m else ""
        lines.append(f"{key:<26}{m['throughput_rps']:>9.1f}{m['p50_ms']:>10.2f}{m['p99_ms']:>10.2f}{str(mb):>8}"
                     f"{str(m.get('remote_calls', '')):>7}{busy:>7}{str(m.get('actor_ms_per_request', '')):>8}"
                     f"{str(m.get('driver_cpu_ms_per_request', '')):>9}{str(m.get('worker_cpu_ms_per_request', '')):>9}"
                     f"{int(m['ok']):>5}/{int(m['requests'])}")
    lines.append("(batch: mean batch the actor ran; calls: remote calls it received; busy: share of the time its "
                 "model was running a batch (pipelined: tool.infer; else tool.batch, decoding included); ms/req: "
                 "that time per request; cpu drv / cpu wrk: CPU ms per request in this process (clients and the "
                 "runner's driver side) and in the actors' or replicas' processes)")
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
