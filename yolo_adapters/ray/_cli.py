"""``yolo-adapters predict-dataset``: ``yolo_adapters.ray.predict`` over a source, written as Parquet."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

import ray


def run(args: argparse.Namespace, options: Mapping[str, Any], predict_args: Mapping[str, Any]) -> int:
    from yolo_adapters.ray import predict

    started = False
    if not ray.is_initialized():
        address = args.address or os.environ.get("RAY_ADDRESS")
        ray.init(address=address, log_to_driver=True)
        started = True
    try:
        ds = predict(
            args.source if len(args.source) > 1 else args.source[0],
            args.model,
            device=args.device,
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            num_cpus=args.num_cpus,
            options=options,
            fail_fast=args.fail_fast,
            **predict_args,
        )
        ds.write_parquet(args.output)  # Ray Data's own progress bars show the job
        print(f"wrote {args.output}")
    finally:
        if started:
            ray.shutdown()
    return 0
