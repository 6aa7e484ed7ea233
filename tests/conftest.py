"""Shared pytest fixtures."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test run (started on first use, ~5 s), shut down at the end.

    2 CPUs and no dashboard: actors in tests must ask for fractional CPUs. Never `ray stop`, which
    would end every Ray process on the machine."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="mmdx", log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(autouse=True, scope="session")
def _own_data_home(tmp_path_factory):
    """Tests never write the user's audit log or conversations (core/config.data_home)."""
    os.environ.setdefault("MMDX_DATA_HOME", str(tmp_path_factory.mktemp("mmdx-data")))
    yield
