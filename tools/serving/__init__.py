"""The tools served on Ray, behind the same `run(requests) -> results` as tools/runner.py.

Two runners, side by side (README, "Serving through Ray", has the measured comparison):

- `ray_runner.RayRunner`, hand-built: pools of named actors (actor.py) that batch every caller's
  requests (batching.py), with calls coalesced in the driver (coalesce.py);
- `serve_runner.ServeRunner`: one Ray Serve deployment per tool, batched with `@serve.batch`.

Both serve a tool through `worker.ToolHost` and answer the same typed failures. `cluster.py` joins
or starts Ray; `options.py` turns `--runner` and `--ray-pools` into a runner. Nothing here is
imported by `mmdx.tools`: Ray is an optional extra (`pip install mmdx[ray]`).
"""
