"""``yolo-adapters predict-dataset``: ``yolo_adapters.ray.predict`` over a source, written as Parquet.

Ray is imported only when the command runs: ``yolo-adapters`` itself starts without it.
"""

from __future__ import annotations

import argparse
from typing import Any

from yolo_adapters.tools.cli._options import add_option_arguments, parse_options


def add_parser(sub: Any) -> None:
    pds = sub.add_parser(
        "predict-dataset", help="batch inference over images on Ray Data, written as Parquet (docs/ray.md)"
    )
    pds.add_argument("source", nargs="+", help="folder, glob, image path or URI (s3://, gs://...), repeatable")
    pds.add_argument("--model", "-m", required=True, help="a .pt (converted once, here) or an engine model")
    pds.add_argument("--device", "-d", default="openvino", help="backend[:device], e.g. openvino, onnxruntime:cuda")
    pds.add_argument("--output", required=True, help="Parquet folder (local or a URI pyarrow can write)")
    pds.add_argument("--address", help="Ray cluster: auto, ray://HOST:10001; default RAY_ADDRESS or a local Ray")
    pds.add_argument("--batch-size", type=int, default=8)
    pds.add_argument("--concurrency", type=int, help="actors (default: the cluster's CPUs / --num-cpus)")
    pds.add_argument("--num-cpus", type=float, help="CPUs per actor, also its engine threads (default 1)")
    pds.add_argument(
        "--fail-fast", action="store_true", help="stop at the first unreadable image (default: error rows)"
    )
    pds.add_argument(
        "--stall-timeout",
        type=float,
        default=600.0,
        help="seconds without progress before the job ends with an error naming the stalled step; 0: never",
    )
    pds.add_argument(
        "--no-check-fit",
        action="store_true",
        help="skip the check that the actor pool fits beside the reads (clusters that add nodes on demand)",
    )
    add_option_arguments(pds, predict_args=True)
    pds.set_defaults(func=cmd_predict_dataset)


def cmd_predict_dataset(args: argparse.Namespace) -> int:
    from yolo_adapters.ray._job import predict_to_parquet

    predict_to_parquet(
        args.source if len(args.source) > 1 else args.source[0],
        args.model,
        args.output,
        address=args.address,
        device=args.device,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        num_cpus=args.num_cpus,
        options=parse_options(args.option),
        fail_fast=args.fail_fast,
        stall_timeout=args.stall_timeout or None,
        check_fit=not args.no_check_fit,
        **parse_options(args.arg),
    )
    print(f"wrote {args.output}")
    return 0
