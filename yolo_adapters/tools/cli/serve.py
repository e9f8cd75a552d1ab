"""``yolo-adapters serve``: online inference over HTTP on Ray Serve (``yolo_adapters.ray.serve``).

Ray is imported only when the command runs: ``yolo-adapters`` itself starts without it.
"""

from __future__ import annotations

import argparse
from typing import Any

from yolo_adapters.tools.cli._options import add_option_arguments, parse_options


def add_parser(sub: Any) -> None:
    srv = sub.add_parser("serve", help="serve a model over HTTP on Ray Serve, one engine per replica (docs/ray.md)")
    srv.add_argument("model", help="a .pt (converted once, here) or an engine model")
    srv.add_argument("--device", "-d", default="openvino", help="backend[:device], e.g. openvino, onnxruntime:cuda")
    srv.add_argument("--host", default="127.0.0.1", help="address the HTTP proxy listens on (0.0.0.0: every one)")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--route-prefix", default="/", help="URL path the model answers at")
    srv.add_argument("--name", default="yolo", help="Serve application name (serve.get_app_handle(NAME))")
    srv.add_argument("--address", help="Ray cluster: auto, ray://HOST:10001; default RAY_ADDRESS or a local Ray")
    srv.add_argument("--replicas", type=int, default=1, help="replicas, one engine each")
    srv.add_argument("--num-cpus", type=float, help="CPUs per replica, also its engine threads (default 1)")
    srv.add_argument("--max-batch-size", type=int, default=8, help="requests batched per engine call (1: none)")
    srv.add_argument(
        "--batch-wait-timeout", type=float, default=0.02, help="seconds a batch waits to fill (default 0.02)"
    )
    srv.add_argument("--max-ongoing-requests", type=int, help="per replica (default 2 x --max-batch-size)")
    srv.add_argument("--max-bytes", type=int, help="largest image a request may send, in bytes (default 20 MiB)")
    srv.add_argument(
        "--no-paths", action="store_true", help="refuse requests naming a file or storage URI on the server"
    )
    srv.add_argument(
        "--non-blocking", action="store_true", help="deploy and return (with --address: the cluster keeps serving)"
    )
    add_option_arguments(srv, predict_args=True)
    srv.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from yolo_adapters.ray.serve import DEFAULT_MAX_BYTES, run

    run(
        args.model,
        host=args.host,
        port=args.port,
        address=args.address,
        route_prefix=args.route_prefix,
        name=args.name,
        blocking=not args.non_blocking,
        device=args.device,
        replicas=args.replicas,
        num_cpus=args.num_cpus,
        max_batch_size=args.max_batch_size,
        batch_wait_timeout_s=args.batch_wait_timeout,
        max_ongoing_requests=args.max_ongoing_requests,
        max_bytes=args.max_bytes or DEFAULT_MAX_BYTES,
        allow_paths=not args.no_paths,
        options=parse_options(args.option),
        **parse_options(args.arg),
    )
    return 0
