"""Every source kind, side by side in one run: yolo_adapters' pipeline vs Ultralytics' native OpenVINO vs the bound.

    python benchmarks/sources.py [--frames 200] [--repeats 2] [--memory-frames 2000] [--soak 20000]

For each source kind (an in-memory list of mixed sizes, a list of same-size 1280x720 frames, a folder of JPEGs, a
video, four videos as a ``.streams`` file), ``predict(source, stream=True)`` with yolo_adapters (OpenVINO, throughput hint, FP32) and with Ultralytics'
native OpenVINO path on the IR it exported itself (FP32 forced), and the decode (where the source has one) +
letterbox + inference bound of yolo_adapters' compiled model (an AsyncInferQueue fed frames decoded and letterboxed
in one loop, no post-processing). Repeats are interleaved; medians are printed with ratios. Then the peak memory of
a ``--memory-frames``-frame 1280x720 in-memory list streamed through yolo_adapters (a child process: RSS above the
frames themselves), and optionally a soak: ``--soak N`` frames across the source kinds, every result counted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")

MEMORY_CHILD = """
import os, sys, threading, time
import numpy as np
os.environ.setdefault("YOLO_OFFLINE", "1")
import cv2
import yolo_adapters
from ultralytics import YOLO
from yolo_adapters.core.assets import pose_weights, sample_images

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

n = int(sys.argv[1])
yolo_adapters.activate("openvino", hint="throughput")
model = YOLO(str(pose_weights()))
photos = [cv2.resize(cv2.imread(str(p)), (1280, 720)) for p in sample_images()]
model.predict(photos[0], verbose=False)  # converted, compiled, warm
frames = [photos[i % 2].copy() for i in range(n)]
base = rss()
peak = [base]
done = threading.Event()

def watch():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.01)

threading.Thread(target=watch, daemon=True).start()
count = sum(1 for _ in model.predict(frames, stream=True, verbose=False))
done.set()
print(f"RESULT {count} {base:.1f} {peak[0]:.1f} {n * 1280 * 720 * 3 / 2**20:.1f}")
"""


def median_fps(runs: list[float]) -> float:
    return statistics.median(runs) if runs else float("nan")


#: predict options per source kind: LoadStreams keeps only each stream's newest frame unless told to buffer, and a
#: file read faster than it is inferred would then drop frames (each side would count different ones).
OPTIONS = {"streams": {"stream_buffer": True}}


def consume(model: Any, source: Any, imgsz: int, kind: str = "") -> tuple[float, int]:
    start = time.perf_counter()
    count = sum(1 for _ in model.predict(source, stream=True, verbose=False, imgsz=imgsz, **OPTIONS.get(kind, {})))
    return count / (time.perf_counter() - start), count


def decoded(kind: str, source: Any) -> Iterator[np.ndarray]:
    """The frames of ``source`` as the predictor gets them before letterboxing (decoded from disk where it is)."""
    import cv2

    if kind in ("video", "streams"):
        files = Path(source).read_text().split() if kind == "streams" else [str(source)]
        captures = [cv2.VideoCapture(f) for f in files]
        while True:  # one frame of each stream per batch, as LoadStreams gives them
            frames = [capture.read() for capture in captures]
            if not all(ok for ok, _ in frames):
                break
            yield from (frame for _, frame in frames)
        for capture in captures:
            capture.release()
    elif kind == "folder":
        for path in sorted(Path(source).glob("*.jpg")):
            yield cv2.imread(str(path))
    else:
        yield from source


def letterboxed(frames: Iterable[np.ndarray], imgsz: int, rect: bool) -> Iterator[np.ndarray]:
    from ultralytics.data.augment import LetterBox

    letterbox = LetterBox((imgsz, imgsz), auto=rect, stride=32)
    for frame in frames:
        x = letterbox(image=frame)[..., ::-1].transpose(2, 0, 1)
        yield np.ascontiguousarray(x[None], dtype=np.float32) / 255.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--memory-frames", type=int, default=2000, help="0: skip the memory figure")
    parser.add_argument("--soak", type=int, default=0, help="frames of the soak across source kinds (0: skip)")
    parser.add_argument("--workdir")
    args = parser.parse_args()

    import logging

    import cv2
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER

    import yolo_adapters
    from yolo_adapters.backends.openvino.plugin import OpenVINOPlugin
    from yolo_adapters.backends.openvino.timing import throughput
    from yolo_adapters.core.assets import pose_weights, sample_images
    from yolo_adapters.tools import bench

    LOGGER.setLevel(logging.WARNING)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="yolo_adapters_sources_"))
    work.mkdir(parents=True, exist_ok=True)
    pt = work / "yolo11n-pose.pt"
    if not pt.exists():
        pt.write_bytes(pose_weights().read_bytes())
    ir_dir = work / "yolo11n-pose_openvino_model"
    if not ir_dir.exists():
        YOLO(str(pt)).export(format="openvino", imgsz=args.imgsz, verbose=False)
    photos = [cv2.imread(str(p)) for p in sample_images()]
    mixed = [photos[i % len(photos)].copy() for i in range(args.frames)]
    same = [cv2.resize(photos[i % len(photos)], (1280, 720)) for i in range(args.frames)]
    folder = work / "folder"
    if not folder.exists():
        folder.mkdir()
        for i, frame in enumerate(same):
            cv2.imwrite(str(folder / f"{i:05d}.jpg"), frame)
    video = work / f"stream_{args.frames}.mp4"
    if not video.exists():
        bench.make_video(video, args.frames)
    quarter = work / f"stream_{args.frames // 4}.mp4"
    if not quarter.exists():
        bench.make_video(quarter, args.frames // 4)
    streams = work / "four.streams"
    streams.write_text("\n".join([str(quarter)] * 4) + "\n")
    sources: dict[str, tuple[Any, bool]] = {  # kind -> (source, rect letterbox for a dynamic model)
        "in-memory list, mixed sizes": (mixed, False),  # Ultralytics letterboxes a mixed list square
        "in-memory list, same-size 1280x720": (same, True),
        "folder of JPEGs (1280x720)": (str(folder), True),
        "video (1280x720 mp4)": (str(video), True),
        "four streams (.streams, 4 x 1280x720 mp4)": (str(streams), True),
    }
    kinds = {
        "in-memory list, mixed sizes": "list",
        "in-memory list, same-size 1280x720": "list",
        "folder of JPEGs (1280x720)": "folder",
        "video (1280x720 mp4)": "video",
        "four streams (.streams, 4 x 1280x720 mp4)": "streams",
    }

    yolo_adapters.activate("openvino", hint="throughput")
    ours = YOLO(str(pt))
    ours.predict(photos[0], verbose=False, imgsz=args.imgsz)
    xml = ours.predictor.model.artifact
    yolo_adapters.deactivate(uninstall=True)
    undo = OpenVINOPlugin.force_f32()
    native = YOLO(str(ir_dir), task="pose")
    native.predict(photos[0], verbose=False, imgsz=args.imgsz)
    undo()

    expected = {label: args.frames // 4 * 4 if kind == "streams" else args.frames for label, kind in kinds.items()}
    rows: dict[str, dict[str, list[float]]] = {k: {"ours": [], "native": [], "bound": []} for k in sources}
    warm = next(letterboxed([photos[0]], args.imgsz, rect=False))
    for repeat in range(args.repeats):
        for label, (source, rect) in sources.items():
            yolo_adapters.activate("openvino", hint="throughput")
            fps, count = consume(ours, source, args.imgsz, kinds[label])
            assert count == expected[label], (label, count)
            rows[label]["ours"].append(fps)
            yolo_adapters.deactivate(uninstall=True)
            undo = OpenVINOPlugin.force_f32()
            try:
                rows[label]["native"].append(consume(native, source, args.imgsz, kinds[label])[0])
            finally:
                undo()
            feed = letterboxed(decoded(kinds[label], source), args.imgsz, rect)
            rows[label]["bound"].append(throughput(Path(xml), feed, warm)["fps"])
            print(
                f"  repeat {repeat + 1}: {label:38s} ours {rows[label]['ours'][-1]:6.2f}  native "
                f"{rows[label]['native'][-1]:6.2f}  bound {rows[label]['bound'][-1]:6.2f} FPS",
                flush=True,
            )
    print(f"\nMachine: {bench.machine()}")
    print(f"Command: python benchmarks/sources.py {' '.join(sys.argv[1:])}\n")
    if args.repeats:
        tensor = next(letterboxed([same[0]], args.imgsz, True))
        inference_only = throughput(Path(xml), [tensor] * args.frames, warm)["fps"]
        print(
            "| source | yolo_adapters FPS | native OpenVINO FPS | decode + letterbox + inference bound FPS | vs native | vs bound |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for label, r in rows.items():
            o, n, b = median_fps(r["ours"]), median_fps(r["native"]), median_fps(r["bound"])
            print(f"| {label} | {o:.2f} | {n:.2f} | {b:.2f} | {o / n:.2f}x | {o / b:.2f}x |")
        shape = "x".join(str(v) for v in tensor.shape[2:])
        same_list = median_fps(rows["in-memory list, same-size 1280x720"]["ours"])
        print(
            f"\nInference-only limit of the same compiled model ({shape} tensors, AsyncInferQueue): {inference_only:.2f} FPS;"
            f" the same-size in-memory list runs at {same_list / inference_only:.2f}x of it"
        )

    if args.memory_frames:
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, str(args.memory_frames)], capture_output=True, text=True, check=True
        )
        count, base, peak, frames_mb = out.stdout.split("RESULT")[-1].split()
        print(
            f"\nPeak memory streaming a {count}-frame 1280x720 in-memory list: {float(peak) - float(base):.0f} MB "
            f"above the process with its frames allocated ({float(frames_mb):.0f} MB of frames)."
        )

    if args.soak:
        yolo_adapters.activate("openvino", hint="throughput")
        soak_sources = list(sources)
        seen, start, i = 0, time.perf_counter(), 0
        while seen < args.soak:
            label = soak_sources[i % len(soak_sources)]
            count = consume(ours, sources[label][0], args.imgsz, kinds[label])[1]
            assert count == expected[label], f"soak: {label} delivered {count} of {expected[label]} results"
            seen += count
            i += 1
        print(
            f"\nSoak: {seen} frames over {i} runs of {len(sources)} source kinds in {time.perf_counter() - start:.0f} s, "
            "every result delivered, no hang."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
