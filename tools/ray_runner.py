"""The import path callers have used for the hand-built Ray runner; it lives in mmdx.tools.serving.

    from mmdx.tools.ray_runner import RayRunner
"""
from mmdx.tools.serving.cluster import ensure_ray
from mmdx.tools.serving.options import parse_pool_sizes, unknown_pool_tools
from mmdx.tools.serving.ray_runner import RayRunner

__all__ = ["RayRunner", "ensure_ray", "parse_pool_sizes", "unknown_pool_tools"]
