"""How the serving benchmark times each mode: in-process loops, closed-loop clients through a
runner, what the actors or replicas did meanwhile, and the fan-out of one case to three tools.
Latency is from a request's issue to its answer (in a batched loop a batch is one issue)."""
from __future__ import annotations

import statistics
import threading
import time

import numpy as np

from mmdx.core.tool import CaseInput, ClassifierOutput


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
    """`clients` threads, each sending its share of `inputs` one request at a time. Besides the
    latencies: this process's CPU time per request (the clients and the runner's driver side)."""
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
    t0, cpu0 = time.perf_counter(), time.process_time()
    for th in threads:
        th.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return _summary([x for xs in lats for x in xs], wall, len(inputs), sum(oks)) | {
        "driver_cpu_ms_per_request": round(1000 * cpu / len(inputs), 3)}


def actor_delta(before: dict, after: dict, wall_s: float, n_actors: int = 1) -> dict:
    """What the actors did during one mode: batches, remote calls, the model's time on batches
    (busy fraction: the mean over the `n_actors` actors), and their processes' CPU time per request."""
    sizes = after["batch_sizes"][len(before["batch_sizes"]):]
    busy = after["busy_s"] - before["busy_s"]
    prep = after["prepare_s"] - before["prepare_s"]
    cpu = after["cpu_s"] - before["cpu_s"]
    n = sum(sizes)
    return {"mean_batch": round(float(np.mean(sizes)), 2) if sizes else 0.0, "max_batch": max(sizes, default=0),
            "remote_calls": after["calls"] - before["calls"],
            "actor_busy_fraction": round(busy / wall_s / max(1, n_actors), 3) if wall_s else 0.0,
            "actor_ms_per_request": round(1000 * busy / n, 3) if n else 0.0,
            "prepare_ms_per_request": round(1000 * prep / n, 3) if n else 0.0,
            "worker_cpu_ms_per_request": round(1000 * cpu / n, 3) if n else 0.0}


def median_mode(rows: list[dict]) -> dict:
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
