"""A whole ``predict`` job for the CLI: start (or join) Ray, run, write Parquet, and stop what it started."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import ray

from yolo_adapters.ray import predict


def predict_to_parquet(
    source: str | Sequence[str],
    model: str,
    output: str,
    *,
    address: str | None = None,
    options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """``predict(source, model, ...)`` written to ``output``; joins ``address`` (or RAY_ADDRESS), else a local Ray."""
    started = False
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), log_to_driver=True)
        started = True
    try:
        predict(source, model, options=dict(options or {}), **kwargs).write_parquet(output)  # Ray Data shows progress
    finally:
        if started:
            ray.shutdown()
