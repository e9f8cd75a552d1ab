"""Static models at the source's rect shape against the square one, side by side in one run.

    python benchmarks/static_shapes.py [--frames 200] [--repeats 2] [--backend openvino]

For a 1280x720 video, the same video as a ``.streams`` file and a list of same-size 1280x720 frames,
``predict(source, stream=True)`` with yolo_adapters on the CPU (defaults otherwise) as: the dynamic model (the CPU
default), a static model letterboxed square (``dynamic=False, rect=False``: every frame padded to 640x640, as
Ultralytics' own static exports and every static engine did before) and a static model at the rect shape
(``dynamic=False``: 384x640 here). Conversions happen before the timing; repeats are interleaved; medians and the
rect/square ratio are printed. Then, on the emulated Ascend card, the bytes fed per frame of the same video, square and
rect (the host-to-device traffic a card pays per frame). ``--pan N``: the panned-video parity table of
docs/static-shapes.md instead (bus.jpg, portrait, panned sideways over N frames: on how many frames each static
engine, square and rect, gives PyTorch's person count and passes the parity tolerances).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")

ROWS = {
    "dynamic (CPU default)": {},
    "static square (rect=False)": {"dynamic": False, "rect": False},
    "static rect": {"dynamic": False},
}


def run(model: Any, source: Any, kind: str) -> tuple[float, int]:
    extra = {"stream_buffer": True} if kind == "streams" else {}
    start = time.perf_counter()
    count = sum(1 for _ in model.predict(source, stream=True, verbose=False, **extra))
    return count / (time.perf_counter() - start), count


def panned(frames: int) -> int:
    import cv2
    import numpy as np
    from ultralytics import YOLO
    from ultralytics.utils import ASSETS

    import yolo_adapters
    from yolo_adapters.compare.parity import DEFAULT_TOLERANCES, compare_results
    from yolo_adapters.core.assets import pose_weights
    from yolo_adapters.testing import emulate_ascend

    work = Path(tempfile.mkdtemp(prefix="yolo_adapters_pan_"))
    bus = cv2.imread(str(ASSETS / "bus.jpg"))
    video = work / "pan.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (bus.shape[1], bus.shape[0]))
    for i in range(frames):
        writer.write(np.roll(bus, i * 12, axis=1))
    writer.release()
    reference = list(YOLO(str(pose_weights())).predict(str(video), stream=True, verbose=False))
    print(f"{'engine':34s} {'letterbox':10s} {'same count':>12s} {'within tol.':>12s}")
    for backend in ("ascend", "openvino", "onnxruntime"):
        for rect in (False, True):
            options: dict[str, Any] = {"rect": rect, "cache_dir": str(work / "cache")}
            if backend != "ascend":
                options["dynamic"] = False
            with emulate_ascend(work / f"emu_{backend}_{rect}", chip="910B3"), yolo_adapters.use(backend, **options):
                device = "ascend:0" if backend == "ascend" else backend
                got = list(YOLO(str(pose_weights())).predict(str(video), stream=True, verbose=False, device=device))
            same = sum(len(a.boxes) == len(b.boxes) for a, b in zip(reference, got))
            within = sum(compare_results(a, b).passed(DEFAULT_TOLERANCES) for a, b in zip(reference, got))
            name = "emulated Ascend 910B3" if backend == "ascend" else f"{backend} dynamic=False"
            print(f"{name:34s} {'rect' if rect else 'square':10s} {same:>6d} of {frames:<3d} {within:>6d} of {frames}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backend", default="openvino", help="openvino or onnxruntime (both CPU)")
    parser.add_argument("--ascend-frames", type=int, default=20, help="0: skip the emulated Ascend bytes")
    parser.add_argument("--pan", type=int, default=0, help="frames of the panned-video parity table (0: speed)")
    args = parser.parse_args()
    if args.pan:
        return panned(args.pan)

    import logging

    import cv2
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER

    import yolo_adapters
    from yolo_adapters.core.assets import pose_weights, sample_images
    from yolo_adapters.core.cpu import cpu_name
    from yolo_adapters.tools import bench

    LOGGER.setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="yolo_adapters_static_"))
    cache = str(work / "cache")
    video = work / "video.mp4"
    bench.make_video(video, args.frames)
    streams = work / "one.streams"
    streams.write_text(f"{video}\n")
    photos = [cv2.resize(cv2.imread(str(p)), (1280, 720)) for p in sample_images()]
    same = [photos[i % len(photos)] for i in range(args.frames)]
    sources = {"video (1280x720 mp4)": (str(video), "video"), ".streams (one 1280x720 mp4)": (str(streams), "streams")}
    sources["same-size list (1280x720)"] = (same, "list")

    models = {}
    for label, options in ROWS.items():
        with yolo_adapters.use(args.backend, cache_dir=cache, **options):
            model = YOLO(str(pose_weights()))
            run(model, same[:4], "list")  # converted (square, and the rect shape), compiled, warm
        models[label] = (model, options)

    fps: dict[str, dict[str, list[float]]] = {s: {r: [] for r in ROWS} for s in sources}
    for _ in range(args.repeats):
        for source_label, (source, kind) in sources.items():
            for label, (model, options) in models.items():
                with yolo_adapters.use(args.backend, cache_dir=cache, **options):
                    rate, count = run(model, source, kind)
                assert count == args.frames, (source_label, label, count)
                fps[source_label][label].append(rate)
                shape = model.predictor.model.last_shape
                print(f"  {source_label:30s} {label:28s} {rate:6.1f} FPS at {shape[0]}x{shape[1]}", flush=True)

    print(f"\n{cpu_name()}, {os.cpu_count()} CPUs; {args.backend}, yolo11n-pose, imgsz 640, {args.frames} frames")
    print(f"{'source':32s}" + "".join(f"{r:>30s}" for r in ROWS) + f"{'rect / square':>16s}")
    for source_label in sources:
        medians = {r: statistics.median(fps[source_label][r]) for r in ROWS}
        ratio = medians["static rect"] / medians["static square (rect=False)"]
        print(f"{source_label:32s}" + "".join(f"{medians[r]:30.1f}" for r in ROWS) + f"{ratio:15.2f}x")

    if args.ascend_frames:
        from yolo_adapters.testing import emulate_ascend

        short = work / "short.mp4"
        bench.make_video(short, args.ascend_frames)
        print("\nEmulated Ascend (910B3), the same video: bytes fed per frame")
        for label, options in (("square (rect=False)", {"rect": False}), ("rect", {})):
            with emulate_ascend(work / f"emu_{label[:4]}", chip="910B3") as emu:
                with yolo_adapters.use("ascend", cache_dir=cache, **options):
                    model = YOLO(str(pose_weights()))
                    count = sum(1 for _ in model.predict(str(short), stream=True, verbose=False, device="ascend:0"))
                fed = [feed["nbytes"] for event in emu.of("infer") for feed in event["feeds"]]
            shape = model.predictor.model.last_shape
            print(
                f"  {label:22s} {shape[0]}x{shape[1]}: {statistics.median(fed) / 2**20:.2f} MiB per frame ({count} frames)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
