"""Ray itself, for the distributed runners: joining or starting it, and cleaning up after drivers
that died without closing their runner.

`ensure_ray(address)` reuses this process's Ray, joins `address` (or $MMDX_RAY_ADDRESS), or starts
a local one that never joins someone else's cluster by accident. A runner's actors are named
`mmdx-tool/<tool>/<index>/<host>/<pid>/<n>` in namespace "mmdx", so `kill_orphan_actors` can find
those whose driver process on this host is gone.
"""
from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

NAMESPACE = "mmdx"
ADDRESS_ENV = "MMDX_RAY_ADDRESS"  # a cluster to join when `address` is not given
ACTOR_PREFIX = "mmdx-tool"  # actor names: mmdx-tool/<tool>/<index>/<host>/<pid>/<runner>


def ensure_ray(address: str | None) -> bool:
    """Reuse this process's Ray, join `address` (or $MMDX_RAY_ADDRESS), or start a local one.

    Returns True when it started or joined Ray (the caller then owns `ray.shutdown()`)."""
    import ray

    address = address or os.environ.get(ADDRESS_ENV)
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if address:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    else:
        # "local": never join someone else's cluster on this machine by accident.
        ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, namespace=NAMESPACE,
                 log_to_driver=False)
    return True


def driver_id(counter: int) -> str:
    """`<host>/<pid>/<counter>`: names what one runner starts, so orphans can be traced to their driver."""
    return f"{socket.gethostname()}/{os.getpid()}/{counter}"


def orphaned(host: str, pid: str) -> bool:
    """Whether a driver named by (host, pid) is a process on this host that no longer runs."""
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def kill_orphan_actors(ray) -> None:
    """Kill named mmdx actors left behind by a driver on this host that no longer runs."""
    try:
        named = ray.util.list_named_actors(all_namespaces=True)
    except Exception as e:  # noqa: BLE001 - best effort; a missing listing only means no cleanup
        log.debug("cannot list named actors: %s", e)
        return
    for entry in named:
        name, ns = entry.get("name", ""), entry.get("namespace")
        parts = name.split("/")  # prefix, tool, index, host, pid, runner counter
        if ns != NAMESPACE or len(parts) != 6 or parts[0] != ACTOR_PREFIX or not orphaned(parts[3], parts[4]):
            continue
        try:
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
            log.info("killed orphaned actor %s", name)
        except Exception as e:  # noqa: BLE001 - it died meanwhile
            log.debug("orphan %s: %s", name, e)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def gpu_share(ray, n_actors: int) -> float:
    """The GPUs each of `n_actors` actors may ask for so that all fit the cluster's GPUs (0 without any)."""
    gpus = float(ray.cluster_resources().get("GPU", 0.0))
    if gpus <= 0:
        return 0.0
    return min(1.0, gpus / max(1, n_actors))


def first_line(err) -> str:
    """The first line of an error, for a failure message (Ray's errors run to many lines)."""
    s = str(err).strip().splitlines()
    return s[0][:300] if s else type(err).__name__
