"""Measure how far each emulated ATC precision mode lands from PyTorch: the numbers behind docs/ascend.md, "Parity".

    python -m benchmarks.ascend_precision                 # the test models (tests/support/models.py), all tasks
    python -m benchmarks.ascend_precision --tasks detect pose
    python -m benchmarks.ascend_precision --model my.pt  # your own checkpoint

Run it from the repository root with ``-m``: the repository root is then first on ``sys.path``, so
``tests.support.models`` is this checkout's (not a ``tests`` package some wheel installed). A maintainer script:
it is not part of the wheel.

For each task and mode it converts the checkpoint with the emulated atc (so the .om computes with the mode's
arithmetic, see ``numerics``), predicts on bus.jpg and zidane.jpg, and prints the worst of
``yolo_adapters.compare.parity.compare_results`` over the images: score difference, box IoU, keypoint distance (max and
mean), mask IoU, probability difference, top-1 agreement and unmatched detections. Each conversion takes a few
seconds; the whole table a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

#: (label, emulated chip, options): one row per mode.
CASES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("origin (fp32 on 910B)", "910B3", {}),
    ("cube_fp16in_fp32out (fp32 on 310P)", "310P3", {}),
    ("allow_fp32_to_fp16", "310P3", {"precision_mode": "allow_fp32_to_fp16"}),
    ("force_fp16 (fp16)", "310P3", {"precision": "fp16"}),
    ("force_fp16 + output_type=FP16", "310P3", {"precision": "fp16", "output_type": "FP16"}),
)
TASKS = ("detect", "segment", "pose", "obb", "classify")


def measure(checkpoint: Path, images: list[Path], work: Path) -> list[dict[str, Any]]:
    """One row per mode for ``checkpoint``: the worst agreement with PyTorch over ``images``."""
    from ultralytics import YOLO

    import yolo_adapters
    from yolo_adapters.compare.parity import compare_results
    from yolo_adapters.testing import emulate_ascend

    references = YOLO(str(checkpoint)).predict(images, rect=False, verbose=False)
    rows = []
    for i, (label, chip, options) in enumerate(CASES):
        with emulate_ascend(work / f"mode{i}", cards=1, chip=chip):
            with yolo_adapters.use("ascend", **options):
                model = YOLO(str(checkpoint))
                results = model.predict(images, device="ascend:0", verbose=False)
        predictor: Any = model.predictor  # set by the predict above
        precision = predictor.model.engine.precision
        found = [compare_results(r, c).as_dict() for r, c in zip(references, results)]
        rows.append(
            {
                "mode": label,
                "atc": precision.label(),
                "score": max(f["max_score_diff"] for f in found),
                "box_iou": min(f["min_box_iou"] for f in found),
                "keypoint_px_max": max(f["max_keypoint_px"] for f in found),
                "keypoint_px_mean": max(f["mean_keypoint_px"] for f in found),
                "mask_iou": min(f["min_mask_iou"] for f in found),
                "prob": max(f["max_prob_diff"] for f in found),
                "top1": all(f["top1_agree"] for f in found),
                "unmatched": sum(len(f["unmatched"]) for f in found),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--model", type=Path, help="a checkpoint of your own instead of the test models")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.utils import ASSETS

    images = [ASSETS / "bus.jpg", ASSETS / "zidane.jpg"]
    work = Path(tempfile.mkdtemp(prefix="yolo_adapters_ascend_precision_"))
    os.environ.setdefault("YOLO_ADAPTERS_CACHE", str(work / "cache"))
    if args.model:
        checkpoints = {"model": args.model}
    else:
        try:
            from tests.support.models import build_checkpoint
        except ImportError:
            parser.error(
                "run `python -m benchmarks.ascend_precision` from the repository root (tests/support/models.py builds "
                "the test models), or pass --model"
            )

        (work / "checkpoints").mkdir()
        checkpoints = {task: build_checkpoint(task, work / "checkpoints") for task in args.tasks}
    table = {task: measure(Path(pt), images, work / task) for task, pt in checkpoints.items()}
    if args.json:
        print(json.dumps(table, indent=1))
        return 0
    print(
        "| task | mode | atc | score diff | box IoU | keypoints max / mean px | mask IoU | prob diff | top-1 | unmatched |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for task, rows in table.items():
        for r in rows:
            print(
                f"| {task} | {r['mode']} | `{r['atc']}` | {r['score']:.2g} | {r['box_iou']:.4f} | "
                f"{r['keypoint_px_max']:.2f} / {r['keypoint_px_mean']:.2f} | {r['mask_iou']:.3f} | {r['prob']:.2g} | "
                f"{'same' if r['top1'] else 'differs'} | {r['unmatched']} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
