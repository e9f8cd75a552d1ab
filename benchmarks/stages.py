"""Where a video frame's CPU time goes outside the engine: decode, letterbox, pre-processing, post-processing.

    python benchmarks/stages.py [--frames 200] [--torch-threads N]

Runs each stage of Ultralytics' predictor alone, one after the other in this thread, on the benchmark's synthetic
1280x720 video (the same frames as `yolo-adapters bench`), through yolo_adapters' OpenVINO engine in throughput
mode, and prints CPU milliseconds per frame for each (process CPU time, so work on torch's or OpenCV's own
threads counts too). With the engine's own CPU time per frame at its inference-only limit, this bounds what any
end-to-end pipeline can reach on the machine: every stage here competes with the engine for the same cores.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("YOLO_OFFLINE", "1")


def cpu_ms(step: Callable[[int], object], count: int) -> float:
    """Process CPU milliseconds per call of ``step(i)`` for i in range(count)."""
    start = time.process_time()
    for i in range(count):
        step(i)
    return 1e3 * (time.process_time() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--torch-threads", type=int, help="torch.set_num_threads before measuring (default: torch's)")
    args = parser.parse_args()

    import cv2
    import torch
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER

    import yolo_adapters
    from yolo_adapters.core.assets import pose_weights
    from yolo_adapters.tools import bench

    LOGGER.setLevel(logging.WARNING)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    video = bench.make_video(Path(tempfile.mkdtemp(prefix="yolo_adapters_stages_")) / "stream.mp4", args.frames)

    capture = cv2.VideoCapture(str(video))
    frames: list = []
    start = time.process_time()
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    decode = 1e3 * (time.process_time() - start) / len(frames)
    capture.release()

    yolo_adapters.activate("openvino", hint="throughput")
    model = YOLO(str(pose_weights()))
    model.predict(frames[0], verbose=False)  # builds the predictor and compiles the engine
    predictor = model.predictor
    n = len(frames)
    letterbox = cpu_ms(lambda i: predictor.pre_transform([frames[i]]), n)
    preprocess = cpu_ms(lambda i: predictor.preprocess([frames[i]]), n)
    tensor = predictor.preprocess([frames[0]])
    outputs = predictor.model(tensor)
    postprocess = cpu_ms(lambda i: predictor.postprocess(outputs, tensor, [frames[i]]), n)
    inference = cpu_ms(lambda i: predictor.model(tensor), min(n, 50))
    yolo_adapters.deactivate()

    print(f"{n} frames of 1280x720 at input {tuple(tensor.shape)}, torch threads {torch.get_num_threads()}")
    print("| stage | CPU ms per frame |\n| --- | ---: |")
    for name, value in (
        ("video decode (cv2.VideoCapture.read)", decode),
        ("letterbox (predictor.pre_transform)", letterbox),
        ("to tensor (predictor.preprocess, letterbox included)", preprocess),
        ("post-processing and NMS (predictor.postprocess)", postprocess),
        ("one synchronous inference (for scale)", inference),
    ):
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
