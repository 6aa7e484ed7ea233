"""`mmdx bench ...` (and, from other helpers, `mmdx eval ...`): benchmarks and evaluations from the shell.

    mmdx bench serving --json --requests 256 --clients 8
    mmdx bench agent --n 20 --json
"""
from __future__ import annotations

import argparse
import json
import sys


def _add_serving(sub) -> None:
    from mmdx.evals.serving_bench import BenchConfig

    d = BenchConfig()
    p = sub.add_parser("serving", help="in-process vs Ray actors, with and without dynamic batching")
    p.add_argument("--requests", type=int, default=d.requests, help="requests per mode")
    p.add_argument("--clients", type=int, default=d.clients, help="concurrent clients in the Ray modes")
    p.add_argument("--max-batch-size", type=int, default=d.max_batch_size)
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms)
    p.add_argument("--pool-size", type=int, default=d.pool_size, help="actors per tool")
    p.add_argument("--fanout-reps", type=int, default=d.fanout_reps)
    p.add_argument("--rounds", type=int, default=d.rounds, help="interleaved rounds of the four modes (medians reported)")
    p.add_argument("--torch-threads", type=int, default=d.torch_threads)
    p.add_argument("--prepare-threads", type=int, default=d.prepare_threads, help="threads decoding inputs in each actor (default: 1 on CPU, up to 4 on a GPU)")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: $MMDX_RAY_ADDRESS or a local Ray)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda where torch sees a GPU)")
    p.add_argument("--json", action="store_true", help="print the report as JSON after the table")
    p.add_argument("--out", help="also write the JSON report to this file")


def _run_serving(args) -> int:
    from mmdx.evals.serving_bench import BenchConfig, format_table, run_bench

    cfg = BenchConfig(requests=args.requests, clients=args.clients, max_batch_size=args.max_batch_size,
                      max_wait_ms=args.max_wait_ms, pool_size=args.pool_size, fanout_reps=args.fanout_reps, rounds=args.rounds,
                      torch_threads=args.torch_threads, prepare_threads=args.prepare_threads, address=args.address, device=args.device)
    if cfg.requests < 1 or cfg.clients < 1 or cfg.max_batch_size < 1:
        print("mmdx bench serving: --requests, --clients and --max-batch-size must be at least 1", file=sys.stderr)
        return 2
    report = run_bench(cfg)
    print(format_table(report))
    text = json.dumps(report, indent=2, default=str)
    if args.json:
        print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


# benchmark name -> (adds its parser, runs it). The agent benchmark joins here.
BENCHES = {"serving": (_add_serving, _run_serving)}


def bench_main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["gpu"]:  # CUDA placement, bf16 vs fp32, serving on the GPU
        from mmdx.evals.gpu_check import main as gpu_check

        return gpu_check(argv[1:])
    if argv[:1] == ["agent"]:  # the agent benchmark parses its own options (it shares the agent's)
        from mmdx.evals.agent_bench import main as agent_bench

        return agent_bench(argv[1:])
    p = argparse.ArgumentParser(prog="mmdx bench", description="Benchmarks: `serving` (below), `agent` (mmdx bench agent --help) and `gpu` (mmdx bench gpu --help).")
    sub = p.add_subparsers(dest="bench", required=True)
    for add, _ in BENCHES.values():
        add(sub)
    args = p.parse_args(argv)
    return BENCHES[args.bench][1](args)


def eval_main(argv: list[str] | None = None) -> int:
    """`mmdx eval run|report`: resumable evaluation runs of the agent over a cohort split."""
    from mmdx.evals.eval_run import main

    return main(argv)
