"""The tool runner on Ray Serve: the same `run(requests) -> results` as `InProcessRunner` and
`RayRunner`, with one Serve deployment per tool (deployment.py), batched by `@serve.batch`.

    from mmdx.tools.serving.serve_runner import ServeRunner
    with ServeRunner(pool_sizes={"cxr": 2}) as runner:       # or address="10.0.0.5:6379"
        results = runner.run([("cxr", CaseInput(case=c)) for c in cases], timeout_s=30)

Each tool is its own Serve application, named `mmdx.<tool>.<n>.<pid>.<host>` (so a runner whose
driver died can be told and deleted), with `pool_sizes[tool]` replicas, no HTTP proxy (handles
only), and is deployed on the tool's first request or by `warmup()`. Serve routes each request to a
replica, replaces a replica that dies and keeps requests for a deployment that is restarting.

Faults come back typed, as from the hand-built runner: per-case input errors are the tool's own
`ToolFailure`s; a replica that dies holding a request has the request's inputs retried each alone
(`run_alone`, outside the batch queue, one after the other, so a poison input cannot take its
neighbours down twice) up to `max_retries` times, then `actor_died` with `retried=n`; an answer
not back by the deadline is cancelled and reported as `timeout`; a tool that fails to load is
`tool_error` "failed to load".
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import defaultdict
from typing import Callable, Sequence

from mmdx.core import registry
from mmdx.core.extras import require
from mmdx.core.tool import CaseInput
from mmdx.tools.runner import ToolFailure, ToolResult, failures
from mmdx.tools.serving.cluster import driver_id, ensure_ray, first_line, gpu_share, orphaned
from mmdx.tools.serving.worker import ToolHost

serve = require("ray.serve", "serve")

log = logging.getLogger(__name__)

APP_PREFIX = "mmdx"  # application names: mmdx.<tool>.<runner counter>.<pid>.<host>
_runner_ids = itertools.count()
# Serve's own throughput settings for a replica (what RAY_SERVE_THROUGHPUT_OPTIMIZED=1 sets there):
# our code on the replica's event loop rather than a second loop in another thread, and request
# logs buffered, not written to stderr. The router in this driver keeps its own loop: run() is
# called from plain threads. Measured in `mmdx bench serving` (README, "Serving through Ray").
REPLICA_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0", "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
               "RAY_SERVE_LOG_TO_STDERR": "0"}
_DEPLOYING = threading.Lock()


class _App:
    """One tool's Serve application, deployed in a background thread so a caller can stop waiting."""

    def __init__(self, name: str, deploy: Callable[[], object]):
        self.name = name
        self.done = threading.Event()
        self.handle = None  # the deployment's handle, set once deployed
        self.methods: dict[str, object] = {}  # method name -> its handle (`handle.run` builds a new one each time)
        self.error: BaseException | None = None
        threading.Thread(target=self._deploy, args=(deploy,), name=f"mmdx-deploy-{name}", daemon=True).start()

    def _deploy(self, deploy: Callable[[], object]) -> None:
        try:
            handle = deploy()
            self.methods = {m: handle.options(method_name=m) for m in ("run", "run_alone", "ready", "stats")}
            self.handle = handle
        except Exception as e:  # noqa: BLE001 - kept and reported to every caller as a typed failure
            self.error = e
        self.done.set()


class ServeRunner:
    """Runs tools on Ray Serve deployments, one per tool, batched by `@serve.batch` in each replica.

    The arguments mean what they mean for `RayRunner` (replicas stand for actors):
    `tool_names` (default: every registered tool; others come back `unknown_tool`), `pool_sizes`
    (replicas per tool, default 1), `max_batch_size` inputs and `max_wait_ms` for a batch,
    `num_cpus_per_actor` / `num_gpus_per_actor` per replica (None: a share of the cluster's GPUs),
    `address` (or $MMDX_RAY_ADDRESS), `request_timeout_s`, `max_retries`, `tool_factory(name[,
    device=])` (must pickle), `torch_threads`, `prepare_threads`, and `pipeline` (two batches in
    flight per replica so the next is prepared while the model runs; off, one at a time).
    """

    def __init__(self, tool_names: Sequence[str] | None = None, pool_sizes: dict[str, int] | None = None,
                 max_batch_size: int = 32, max_wait_ms: float = 5, num_cpus_per_actor: float = 0.25,
                 num_gpus_per_actor: float | None = None, address: str | None = None,
                 request_timeout_s: float = 60, max_retries: int = 2, tool_factory: Callable | None = None,
                 torch_threads: int = 1, prepare_threads: int | None = None, pipeline: bool = True):
        ray = require("ray", "ray")

        from mmdx.tools.serving.deployment import PipelinedToolDeployment, ToolDeployment

        self._ray = ray
        if tool_names is None:
            from mmdx import tools  # noqa: F401 - fills the registry

            tool_names = registry.names()
        self.tool_names = tuple(tool_names)
        self._pool_sizes = {n: max(1, int((pool_sizes or {}).get(n, 1))) for n in self.tool_names}
        self._max_batch_size = max(1, int(max_batch_size))
        self._timeout_s = request_timeout_s
        self._max_retries = max(0, int(max_retries))
        self._started_ray = ensure_ray(address)
        self._num_gpus = (gpu_share(ray, sum(self._pool_sizes.values())) if num_gpus_per_actor is None
                          else float(num_gpus_per_actor))
        self._deployment_cls = PipelinedToolDeployment if pipeline else ToolDeployment
        self._args = (tool_factory, max_batch_size, max_wait_ms, torch_threads, prepare_threads, pipeline)
        self._num_cpus = num_cpus_per_actor
        self._id = driver_id(next(_runner_ids)).split("/")  # host, pid, counter
        self._apps: dict[str, _App] = {}
        self._lock = threading.Lock()
        self._closed = False
        logging.getLogger("ray.serve").setLevel(logging.WARNING)  # Serve logs every deploy at INFO
        serve.start(proxy_location="Disabled")  # handles only: no HTTP proxy, no port taken
        self._delete_orphans()

    # -- public interface ------------------------------------------------------------------------

    def run(self, requests: Sequence[tuple[str, CaseInput]], timeout_s: float | None = None) -> list[ToolResult]:
        if self._closed:
            raise RuntimeError("ServeRunner is closed")
        timeout = self._timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        results: list[ToolResult | None] = [None] * len(requests)
        by_tool: dict[str, list[int]] = defaultdict(list)
        for idx, (name, inp) in enumerate(requests):
            if name in self._pool_sizes:
                by_tool[name].append(idx)
            else:
                results[idx] = ToolFailure(
                    tool=name, case_id=inp.case.case_id, kind="unknown_tool", field="tool",
                    message=f"unknown tool {name!r}; known: {', '.join(sorted(self._pool_sizes)) or 'none'}")

        sent: list[tuple[str, list[int], object]] = []  # (tool, request indices, DeploymentResponse)
        for name, idxs in by_tool.items():
            methods = self._methods(name, idxs, requests, results, deadline, timeout)
            if methods is None:
                continue
            # one request per replica (so a pool shares the work), none larger than a batch
            n_chunks = max(min(self._pool_sizes[name], len(idxs)), -(-len(idxs) // self._max_batch_size))
            size = -(-len(idxs) // n_chunks)
            for k in range(0, len(idxs), size):
                chunk = idxs[k:k + size]
                sent.append((name, chunk, methods["run"].remote([requests[i][1] for i in chunk])))
        for name, chunk, response in sent:
            self._collect(name, chunk, response, requests, results, deadline, timeout)
        return results  # type: ignore[return-value]

    def warmup(self, timeout_s: float | None = None) -> dict[str, list[dict]]:
        """Deploy every tool and wait until each replica has loaded its tool; returns where each runs."""
        t = self._timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + t
        out = {}
        apps = {name: self._app(name) for name in self.tool_names}  # deploys start at once
        for name, app in apps.items():
            if not app.done.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"{name} was not deployed within {t:g}s")
            if app.error is not None:
                raise app.error
            out[name] = self._each_replica(name, "ready", max(0.0, deadline - time.monotonic()))
        return out

    def actor_stats(self, timeout_s: float = 10) -> dict[str, dict]:
        """Per deployed tool, over its replicas: every batch size on the model, requests received
        (`calls`), the model's seconds on batches (`busy_s`), the prepare threads' (`prepare_s`) and the
        replicas' processes' CPU seconds so far (`cpu_s`)."""
        with self._lock:
            names = [n for n, app in self._apps.items() if app.handle is not None]
        out: dict[str, dict] = {}
        for name in names:
            stats = self._each_replica(name, "stats", timeout_s)
            out[name] = ToolHost.merge_stats(stats)
        return out

    def batch_sizes(self, timeout_s: float = 10) -> dict[str, list[int]]:
        """The size of every batch each deployed tool's replicas have run, replica by replica."""
        return {name: st["batch_sizes"] for name, st in self.actor_stats(timeout_s).items()}

    @property
    def gpu_share(self) -> float:
        """The GPUs each replica asks Ray for (a fraction where several share one; 0 on CPU)."""
        return self._num_gpus

    def kill_actor(self, tool: str, index: int = 0) -> None:
        """Kill one of `tool`'s replicas the way a crash would (Serve replaces it): fault injection."""
        ray = self._ray
        prefix = f"SERVE_REPLICA::{self._app_name(tool)}#"
        names = sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                       if a.get("namespace") == "serve" and a.get("name", "").startswith(prefix))
        ray.kill(ray.get_actor(names[index], namespace="serve"), no_restart=True)

    def close(self) -> None:
        """Delete this runner's applications; shut Ray down if this runner started it."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            apps, self._apps = self._apps, {}
        if self._started_ray:
            self._ray.shutdown()  # our own local Ray: Serve and every replica go with it
            return
        for app in apps.values():
            try:
                serve.delete(app.name, _blocking=False)
            except Exception as e:  # noqa: BLE001 - already gone, or never deployed
                log.debug("delete %s: %s", app.name, e)
        self._wait_deleted({app.name for app in apps.values()}, timeout_s=30)

    def __enter__(self) -> "ServeRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------

    def _app_name(self, tool: str) -> str:
        host, pid, n = self._id
        return f"{APP_PREFIX}.{tool}.{n}.{pid}.{host}"

    def _app(self, name: str) -> _App:
        with self._lock:
            app = self._apps.get(name)
            if app is None:
                app = self._apps[name] = _App(self._app_name(name), lambda: self._deploy(name))
            return app

    def _deploy(self, name: str):
        """Deploy tool `name` (one at a time in this process: Serve's client is not made for
        concurrent deploys) and wait until its replicas have loaded it; returns its handle."""
        opts = {"num_cpus": self._num_cpus, "num_gpus": self._num_gpus, "runtime_env": {"env_vars": REPLICA_ENV}}
        deployment = serve.deployment(self._deployment_cls).options(
            name=name, num_replicas=self._pool_sizes[name], ray_actor_options=opts,
            max_ongoing_requests=1000,  # Serve's default of 5 would cap a replica's batch at 5
            health_check_period_s=1, graceful_shutdown_timeout_s=1)
        with _DEPLOYING:
            return serve.run(deployment.bind(name, *self._args), name=self._app_name(name), route_prefix=None,
                             logging_config={"log_level": "WARNING", "enable_access_log": False})

    def _methods(self, name: str, idxs: list[int], requests, results, deadline: float, timeout: float):
        """Tool `name`'s method handles once deployed (waiting to the deadline); None after filling its
        inputs' results with the typed failure (timeout, or failed to load)."""
        app = self._app(name)
        if not app.done.wait(max(0.0, deadline - time.monotonic())):
            for i, f in zip(idxs, failures(name, [requests[i][1] for i in idxs], "timeout",
                                           f"{name} was not deployed within {timeout:g}s")):
                results[i] = f
            return None
        if app.error is None:
            return app.methods
        log.error("tool %s failed to deploy: %s", name, app.error)
        with self._lock:  # the next request deploys it afresh
            if self._apps.get(name) is app:
                del self._apps[name]
        try:
            serve.delete(app.name, _blocking=False)
        except Exception as e:  # noqa: BLE001 - nothing left to delete
            log.debug("delete %s: %s", app.name, e)
        for i, f in zip(idxs, failures(name, [requests[i][1] for i in idxs], "tool_error",
                                       f"{name} failed to load: {first_line(app.error)}")):
            results[i] = f
        return None

    def _collect(self, name: str, idxs: list[int], response, requests, results, deadline: float, timeout: float) -> None:
        """Fill the results of one request: its answer, its retries, or typed failures."""
        ray = self._ray
        try:
            outs = response.result(timeout_s=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            response.cancel()
            outs = failures(name, [requests[i][1] for i in idxs], "timeout", f"{name} did not answer within {timeout:g}s")
        except ray.exceptions.RayActorError as e:  # the replica died holding this request
            self._retry_alone(name, idxs, e, requests, results, deadline, timeout)
            return
        except (ray.exceptions.RayError, serve.exceptions.RayServeException) as e:
            log.error("tool %s call failed: %s", name, e)
            outs = failures(name, [requests[i][1] for i in idxs], "tool_error", f"{type(e).__name__}: {first_line(e)}")
        for i, out in zip(idxs, outs):
            results[i] = out

    def _retry_alone(self, name: str, idxs: list[int], err, requests, results, deadline: float, timeout: float) -> None:
        """After a replica died holding `idxs`: each input alone, one after the other, until it is
        answered or has been tried `max_retries` more times."""
        ray = self._ray
        log.warning("tool %s replica died (%s); retrying %d input(s) one at a time", name, first_line(err), len(idxs))
        app = self._apps.get(name)
        run_alone = app.methods.get("run_alone") if app is not None else None
        for i in idxs:
            inp, attempt, why = requests[i][1], 0, err
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or run_alone is None:
                    results[i] = ToolFailure(tool=name, case_id=inp.case.case_id, kind="timeout", retried=attempt,
                                             message=f"{name} did not answer within {timeout:g}s")
                    break
                if attempt >= self._max_retries:
                    results[i] = ToolFailure(tool=name, case_id=inp.case.case_id, kind="actor_died", retried=attempt,
                                             message=f"the {name} replica died while running this input ({first_line(why)})")
                    break
                attempt += 1
                response = run_alone.remote([inp])
                try:
                    (results[i],) = response.result(timeout_s=left)
                    break
                except TimeoutError:
                    response.cancel()
                except ray.exceptions.RayActorError as e:
                    why = e
                except (ray.exceptions.RayError, serve.exceptions.RayServeException) as e:
                    results[i] = ToolFailure(tool=name, case_id=inp.case.case_id, kind="tool_error", retried=attempt,
                                             message=f"{type(e).__name__}: {first_line(e)}")
                    break

    def _each_replica(self, name: str, method: str, timeout_s: float) -> list[dict]:
        """`method()` of every replica of `name`. Serve routes a handle's calls, not the caller, so
        this calls until each replica (told apart by pid) has answered."""
        want = self._pool_sizes[name]
        handle = self._app(name).methods[method]
        seen: dict[int, dict] = {}
        deadline = time.monotonic() + timeout_s
        while len(seen) < want:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{name}: {len(seen)} of {want} replicas answered {method}() within {timeout_s:g}s")
            answers = [handle.remote() for _ in range(2 * want)]
            for a in answers:
                info = a.result(timeout_s=max(0.1, deadline - time.monotonic()))
                seen[info["pid"]] = info
        return [seen[p] for p in sorted(seen)]

    def _delete_orphans(self) -> None:
        """Delete mmdx applications left by a driver on this host that no longer runs."""
        try:
            apps = list(serve.status().applications)
        except Exception as e:  # noqa: BLE001 - best effort; a missing listing only means no cleanup
            log.debug("cannot list Serve applications: %s", e)
            return
        for app in apps:
            parts = app.split(".", 4)  # prefix, tool, counter, pid, host
            if len(parts) == 5 and parts[0] == APP_PREFIX and orphaned(parts[4], parts[3]):
                log.info("deleting orphaned Serve application %s", app)
                serve.delete(app, _blocking=False)

    def _wait_deleted(self, names: set[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while names:
            try:
                names = names & set(serve.status().applications)
            except Exception as e:  # noqa: BLE001 - Serve itself is gone: so are the applications
                log.debug("serve status: %s", e)
                return
            if names and time.monotonic() > deadline:
                log.warning("Serve applications still being deleted after %gs: %s", timeout_s, ", ".join(sorted(names)))
                return
            time.sleep(0.2)
