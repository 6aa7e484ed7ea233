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
    p = sub.add_parser("serving", help="in-process vs Ray actors (with and without dynamic batching) vs Ray Serve")
    p.add_argument("--requests", type=int, default=d.requests, help="requests per mode")
    p.add_argument("--clients", type=int, default=d.clients, help="concurrent clients in the Ray modes")
    p.add_argument("--max-batch-size", type=int, default=d.max_batch_size)
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms)
    p.add_argument("--pool-size", type=int, default=d.pool_size, help="actors per tool")
    p.add_argument("--fanout-reps", type=int, default=d.fanout_reps)
    p.add_argument("--rounds", type=int, default=d.rounds, help="interleaved rounds of every mode (medians reported)")
    p.add_argument("--torch-threads", type=int, default=d.torch_threads)
    p.add_argument("--prepare-threads", type=int, default=d.prepare_threads, help="threads decoding inputs in each actor (default: 1 on CPU, up to 4 on a GPU)")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: $MMDX_RAY_ADDRESS or a local Ray)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda where torch sees a GPU)")
    p.add_argument("--no-serve", dest="serve", action="store_false",
                   help="leave out mode (e), Ray Serve (which needs the [serve] extra)")
    p.add_argument("--json", action="store_true", help="print the report as JSON after the table")
    p.add_argument("--out", help="also write the JSON report to this file")


def _run_serving(args) -> int:
    from mmdx.evals.serving_bench import BenchConfig, format_table, run_bench

    cfg = BenchConfig(requests=args.requests, clients=args.clients, max_batch_size=args.max_batch_size,
                      max_wait_ms=args.max_wait_ms, pool_size=args.pool_size, fanout_reps=args.fanout_reps, rounds=args.rounds,
                      torch_threads=args.torch_threads, prepare_threads=args.prepare_threads, address=args.address, device=args.device,
                      serve=args.serve)
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


# benchmarks and evaluations that parse their own options: name -> (module:function taking argv, help)
DELEGATED_BENCHES = {
    "agent": ("mmdx.evals.agent_bench:main", "the agent with the real LLM over cases: latency, tool calls, answers"),
    "gpu": ("mmdx.evals.gpu_check:main", "CUDA placement, bf16 vs fp32, serving on the GPU"),
}
EVALS = {
    "run": ("mmdx.evals.workflow_run:main", "run (or resume) an evaluation workflow: mmdx eval run FILE --out DIR"),
    "report": ("mmdx.evals.workflow_run:main", "re-render a run folder's summary.json and report.html"),
    "injection": ("mmdx.evals.injection:main", "the prompt-injection suite with the real tools"),
}


def _call(target: str, argv: list[str]) -> int:
    import importlib

    mod, fn = target.split(":")
    return int(getattr(importlib.import_module(mod), fn)(argv) or 0)


def bench_main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in DELEGATED_BENCHES:  # these parse their own options (agent shares the agent's)
        return _call(DELEGATED_BENCHES[argv[0]][0], argv[1:])
    p = argparse.ArgumentParser(prog="mmdx bench", description="Benchmarks; `mmdx bench NAME --help` for each.")
    sub = p.add_subparsers(dest="bench", required=True)
    for add, _ in BENCHES.values():
        add(sub)
    for name, (_, help_) in DELEGATED_BENCHES.items():
        sub.add_parser(name, help=help_, add_help=False)  # listed here, parsed by its own module
    args = p.parse_args(argv)
    return BENCHES[args.bench][1](args)


def eval_main(argv: list[str] | None = None) -> int:
    """`mmdx eval run|report|injection`: evaluation workflows (workflows/*.yaml), and the injection suite."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["injection"]:
        return _call(EVALS["injection"][0], argv[1:])
    if argv[:1] and argv[0] in EVALS:
        return _call(EVALS[argv[0]][0], argv)  # workflow_run parses run/report itself
    p = argparse.ArgumentParser(prog="mmdx eval", description="Evaluations; `mmdx eval NAME --help` for each.")
    sub = p.add_subparsers(dest="eval", required=True)
    for name, (_, help_) in EVALS.items():
        sub.add_parser(name, help=help_, add_help=False)
    p.parse_args(argv)  # only --help or an unknown name reach here: argparse prints and exits
    return 2
