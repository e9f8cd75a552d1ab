"""Test models for every model family and task the installed Ultralytics ships, built offline from its YAML files.

Only yolo11n-pose has real weights offline, so every model here is built so that its outputs depend on the image
and its decisions have margins far above the parity tolerances (a comparison that cannot fail proves nothing):

- weights: seeded (``torch.manual_seed(0)``); every tensor whose name and shape match the real yolo11n-pose
  weights is taken from them (the YOLO11 and YOLO26 backbones share most layers; not on Ultralytics < 8.3, which
  cannot load them); YOLO12's attention blocks are damped like a layer scale (``damp_attention``); then every
  BatchNorm's
  statistics are set from the test images, so the features stay varied layer after layer instead of fading.
- detect, segment, pose, obb (YOLO-style heads, YOLOv10's and YOLO26's included) and RT-DETR: one class; its bias
  is shifted so that the default conf=0.25 sits in the widest gap of the scores over the test images (every image
  gets detections, none near the threshold).
- classify: four classes; the linear layer reads the test images' pooled features along the direction that
  separates bus.jpg from zidane.jpg, logits (2p, p, -p, -2p) with p = +1 on bus.jpg and -1 on zidane.jpg: each
  image gets its own top-1, one logit ahead of the next class (probabilities 0.70 / 0.26 / ...).
- semantic: three classes; the final 1x1 convolution reads the first principal component of the test images'
  features and splits it at its terciles (class maps of large regions, ties only on their borders).
- depth: the final 1x1 convolution maps the same principal component to log-depth (its 2nd..98th percentiles to -1..3),
  so the map follows the image's content over about two orders of magnitude.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tests.support.models import legacy_ultralytics, recalibrate_batchnorm
from yolo_adapters.core import assets

IMGSZ = 320  # small and CI-friendly; every family here takes it

#: family -> task -> Ultralytics YAML (n scale where the family has scales; RT-DETR has only l and x).
FAMILIES: dict[str, dict[str, str]] = {
    "YOLO26": {
        "detect": "yolo26n.yaml",
        "segment": "yolo26n-seg.yaml",
        "semantic": "yolo26n-sem.yaml",
        "depth": "yolo26n-depth.yaml",
        "classify": "yolo26n-cls.yaml",
        "pose": "yolo26n-pose.yaml",
        "obb": "yolo26n-obb.yaml",
    },
    "YOLOv8": {
        "detect": "yolov8n.yaml",
        "segment": "yolov8n-seg.yaml",
        "classify": "yolov8n-cls.yaml",
        "pose": "yolov8n-pose.yaml",
        "obb": "yolov8n-obb.yaml",
    },
    "YOLOv10": {"detect": "yolov10n.yaml"},
    "YOLO11": {
        "detect": "yolo11n.yaml",
        "segment": "yolo11n-seg.yaml",
        "classify": "yolo11n-cls.yaml",
        "pose": "yolo11n-pose.yaml",
        "obb": "yolo11n-obb.yaml",
    },
    "YOLO12": {
        "detect": "yolo12n.yaml",
        "segment": "yolo12n-seg.yaml",
        "classify": "yolo12n-cls.yaml",
        "pose": "yolo12n-pose.yaml",
        "obb": "yolo12n-obb.yaml",
    },
    "RT-DETR": {"detect": "rtdetr-l.yaml"},
    # Open-vocabulary families with their classes set offline: fixed prompt embeddings instead of a text encoder.
    "YOLOE": {"detect": "yoloe-11n.yaml", "segment": "yoloe-11n-seg.yaml"},
    "YOLO-World": {"detect": "yolov8n-worldv2.yaml"},
}

#: Families whose classes come from prompt embeddings (``set_fixed_prompts``).
PROMPTED = ("YOLOE", "YOLO-World")


def yaml_file(name: str) -> Path | None:
    """The installed Ultralytics' YAML for ``name`` (scale letter stripped), or None when this release lacks it."""
    import re

    from ultralytics.cfg import __file__ as cfg_init

    stem = Path(name).stem
    unscaled = re.sub(r"(\d+)([nslmx])(?=$|-)", r"\1", stem, count=1)  # yolo26n-seg -> yolo26-seg, yolov10n -> yolov10
    for candidate in (stem, unscaled):
        found = sorted(Path(cfg_init).parent.joinpath("models").rglob(f"{candidate}.yaml"))
        if found:
            return found[0]
    return None


#: Cases a release ships but whose seeded test model cannot be compared there, and why (docs/families.md).
NOT_COMPARABLE_BEFORE = {
    ("YOLOv10", "detect"): (
        (8, 3),
        "Ultralytics 8.2 post-processes YOLOv10 as the top 300 one-to-many scores without NMS: the seeded model "
        "fills all 300 slots on bus.jpg with overlapping boxes, and which one is 300th is a near tie",
    ),
}


def available(family: str, task: str) -> str | None:
    """Why ``family``/``task`` cannot be compared with the installed Ultralytics (not shipped, or a test model that
    cannot be compared there), or None when it can."""
    import ultralytics

    name = FAMILIES[family].get(task)
    if name is None:
        return f"{family} has no {task} model"
    if yaml_file(name) is None:
        return f"Ultralytics {ultralytics.__version__} has no {name}"
    before = NOT_COMPARABLE_BEFORE.get((family, task))
    if before is not None and tuple(int(p) for p in ultralytics.__version__.split(".")[:2]) < before[0]:
        return before[1]
    return None


def test_views(imgsz: int) -> list[torch.Tensor]:
    """The two test images letterboxed both ways the predictor may: minimal rect padding, and a full square."""
    import cv2
    import numpy as np
    from ultralytics.data.augment import LetterBox

    views = []
    for image in assets.sample_images():
        bgr = cv2.imread(str(image))
        for auto in (True, False):
            x = LetterBox(imgsz, auto=auto, stride=32)(image=bgr)
            views.append(torch.from_numpy(np.ascontiguousarray(x[..., ::-1].transpose(2, 0, 1))).float()[None] / 255)
    return views


test_views.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite the name


def borrow_pose_weights(model: torch.nn.Module) -> int:
    """Copy every tensor whose name and shape match the real yolo11n-pose weights; returns how many (none on
    Ultralytics < 8.3, which cannot load YOLO11 layers: the models stay seeded there)."""
    from ultralytics import YOLO

    if legacy_ultralytics():
        return 0

    donor = YOLO(str(assets.pose_weights(verify=True))).model.float().state_dict()
    state = model.state_dict()
    shared = {k: v for k, v in donor.items() if k in state and v.shape == state[k].shape}
    state.update(shared)
    model.load_state_dict(state)
    return len(shared)


GAPS: list[float] = []  # the logit gap each calibration found (reported by the tests' margin check)


def _widest_gap_shift(logits: list[torch.Tensor], lo_count: int = 3, hi_count: int = 300) -> float:
    """How far to shift logits so that logit(0.25) falls in the widest gap between consecutive values (over all
    views) that leaves ``lo_count`` to ``hi_count`` above it on every view (``hi_count`` doubles until one does:
    a model whose views score very differently needs more detections on the brighter ones)."""
    ordered = torch.cat(logits).sort(descending=True).values.tolist()
    best, threshold = -1.0, None
    while threshold is None and hi_count <= 2000:
        for hi, lo in zip(ordered[:-1], ordered[1:]):
            middle = (hi + lo) / 2
            if hi - lo <= best:
                continue
            above = [int((v > middle).sum()) for v in logits]
            if max(above) > hi_count:
                break  # lower thresholds only let more through
            if min(above) >= lo_count:
                best, threshold = hi - lo, middle
        hi_count *= 2
    assert threshold is not None, "no threshold leaves detections on every test image"
    GAPS.append(best)
    return float(torch.logit(torch.tensor(0.25, dtype=torch.float64))) - threshold


def damp_attention(model: torch.nn.Module, factor: float = 0.1) -> int:
    """Scale the residual branches of YOLO12's attention blocks (area attention and its MLP) by ``factor``, as a
    layer scale does; returns how many blocks. Seeded at full strength, they amplify a padded square view's
    features about 10x over the rect view of the same photo, layer after layer, and no conf threshold then leaves a
    few detections on every view. Damped, the blocks still compute (the engine runs every attention op and
    parity sees them) while the features stay comparable across views."""
    from ultralytics.nn.modules.block import ABlock

    blocks = [m for m in model.modules() if isinstance(m, ABlock)]
    with torch.no_grad():
        for block in blocks:
            for conv in (block.attn.proj, block.mlp[-1]):
                conv.bn.weight.mul_(factor)
                conv.bn.bias.mul_(factor)
    return len(blocks)


def _first_tensor(out: object) -> torch.Tensor:
    while isinstance(out, (list, tuple)):
        out = out[0]
    assert isinstance(out, torch.Tensor)
    return out


def calibrate_detection_bias(model: torch.nn.Module, views: list[torch.Tensor], spread: float = 3.0) -> None:
    """One-class YOLO heads (Detect, Segment, Pose, OBB, v10Detect, their YOLO26 versions), each branch (one-to-many
    and, where present, one-to-one): scale the class convolution so its logits spread ``spread`` (std over the
    views), then shift its bias so conf=0.25 sits in the widest gap of the scores."""
    head = model.model[-1]
    branches = [b for b in (getattr(head, "cv3", None), getattr(head, "one2one_cv3", None)) if b is not None]

    def branch_logits(e2e: bool) -> list[torch.Tensor]:
        logits = []
        with torch.no_grad():
            for x in views:
                out = _first_tensor(model(x))
                if e2e:  # (B, max_det, 6+): x1, y1, x2, y2, score, class, ...
                    logits.append(torch.logit(out[0, :, 4].double().clamp(1e-12, 1 - 1e-12)))
                else:  # (B, 4 + nc + extra, anchors): one class, row 4 holds its sigmoid scores
                    logits.append(torch.logit(out[0, 4].double().clamp(1e-12, 1 - 1e-12)))
        return logits

    for e2e, cv3 in zip((False, True), branches):
        if len(branches) > 1:
            head.end2end = e2e
        with torch.no_grad():
            for branch in cv3:
                branch[-1].bias.zero_()
            factor = spread / float(torch.cat(branch_logits(e2e)).std())
            for branch in cv3:
                branch[-1].weight.mul_(factor)
            shift = _widest_gap_shift(branch_logits(e2e), hi_count=60)
            for branch in cv3:
                branch[-1].bias += shift
    if len(branches) > 1:
        head.end2end = False  # Ultralytics' default for a model built from YAML: one-to-many + NMS


def set_fixed_prompts(model: torch.nn.Module, family: str, names: dict[int, str]) -> None:
    """Classes from fixed prompt embeddings (seeded, unit length): what a user does offline with embeddings saved
    from an earlier ``get_text_pe`` / visual-prompt run. A text prompt would need the CLIP / MobileCLIP weights,
    which are downloaded. YOLOE takes them through ``set_classes(names, embeddings)``; YOLO-World reads its
    ``txt_feats``."""
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(1, len(names), 512, generator=generator), dim=-1)
    if family == "YOLOE":
        model.set_classes(list(names.values()), embeddings)
    else:
        model.txt_feats = embeddings
        model.model[-1].nc = len(names)


def calibrate_contrastive_bias(model: torch.nn.Module, views: list[torch.Tensor], spread: float = 3.0) -> None:
    """Open-vocabulary heads (YOLOE, YOLO-World): the class logit of each level is the contrastive head's
    ``embedding . prompt * exp(logit_scale) + bias``; set ``logit_scale`` so the logits spread ``spread`` (std over
    the views), then ``bias`` so conf=0.25 sits in the widest gap of the scores."""
    heads = list(model.model[-1].cv4)

    def logits() -> list[torch.Tensor]:
        with torch.no_grad():
            return [torch.logit(_first_tensor(model(x))[0, 4].double().clamp(1e-12, 1 - 1e-12)) for x in views]

    with torch.no_grad():
        for head in heads:
            head.bias.zero_()
        factor = spread / float(torch.cat(logits()).std())
        for head in heads:
            head.logit_scale += float(torch.log(torch.tensor(factor)))
        shift = _widest_gap_shift(logits(), hi_count=60)
        for head in heads:
            head.bias += shift


def calibrate_rtdetr_bias(model: torch.nn.Module, views: list[torch.Tensor]) -> None:
    """RT-DETR: shift the last decoder layer's class bias so conf=0.25 sits in the widest gap of its 300 scores."""
    head = model.model[-1]
    logits = []
    with torch.no_grad():
        head.dec_score_head[-1].bias.zero_()
        for x in views:
            out = _first_tensor(model(x))  # (B, 300, 4 + nc)
            logits.append(torch.logit(out[0, :, 4].double().clamp(1e-12, 1 - 1e-12)))
        head.dec_score_head[-1].bias += _widest_gap_shift(logits, lo_count=3, hi_count=200)


def _inputs_of(module: torch.nn.Module, model: torch.nn.Module, views: list[torch.Tensor]) -> list[torch.Tensor]:
    """What ``module`` receives when ``model`` runs on each view."""
    seen: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    try:
        with torch.no_grad():
            for x in views:
                model(x)
    finally:
        handle.remove()
    return seen


def _first_component(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, first principal direction and the per-pixel projections of NCHW features over all views."""
    pixels = torch.cat([f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]) for f in features]).double()
    mean = pixels.mean(0)
    _, _, v = torch.linalg.svd(pixels - mean, full_matrices=False)
    direction = v[0]
    return mean, direction, (pixels - mean) @ direction


def fit_semantic_head(model: torch.nn.Module, views: list[torch.Tensor], scale: float = 3.0) -> None:
    """Three classes from the first principal component's terciles: logits (-s pc + s t1, 0, s pc - s t2)."""
    conv = model.model[-1].classifier[-1]
    mean, direction, pc = _first_component(_inputs_of(conv, model, views))
    t1, t2 = (
        float(q) for q in torch.quantile(pc[:: max(1, len(pc) // 100000)], torch.tensor([1 / 3, 2 / 3], dtype=pc.dtype))
    )
    s = scale / float(pc.std())
    a = torch.tensor([-s, 0.0, s], dtype=torch.float64)
    c = torch.tensor([s * t1, 0.0, -s * t2], dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_((a[:, None] * direction[None]).float()[:, :, None, None])
        conv.bias.copy_((c - a * float(mean @ direction)).float())


def fit_depth_head(model: torch.nn.Module, views: list[torch.Tensor]) -> None:
    """Log-depth follows the first principal component: its 2nd..98th percentiles map to -1..3 (depth 0.37..20)."""
    head = model.model[-1]
    conv = head.head[-1]
    mean, direction, pc = _first_component(_inputs_of(conv, model, views))
    sample = pc[:: max(1, len(pc) // 100000)]
    lo, hi = (float(q) for q in torch.quantile(sample, torch.tensor([0.02, 0.98], dtype=pc.dtype)))
    w = direction * (4.0 / (hi - lo))
    with torch.no_grad():
        conv.weight.copy_(w.float()[None, :, None, None])
        conv.bias.fill_(-1.0 - float(mean @ w) - lo * 4.0 / (hi - lo))


def fit_classify_head(model: torch.nn.Module, imgsz: int) -> None:
    """Four classes with logits (2p, p, -p, -2p), p = +1 on bus.jpg's pooled features and -1 on zidane.jpg's."""
    from PIL import Image
    from ultralytics.data.augment import classify_transforms

    transform = classify_transforms(imgsz)
    inputs = [transform(Image.open(path).convert("RGB"))[None] for path in assets.sample_images()]
    linear = model.model[-1].linear
    bus, zidane = (f.double().flatten() for f in _inputs_of(linear, model, inputs))
    d, m = bus - zidane, (bus + zidane) / 2
    project = 2 * d / float(d @ d)  # p(f) = project . (f - m)
    coefficients = torch.tensor([2.0, 1.0, -1.0, -2.0], dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_((coefficients[:, None] * project[None]).float())
        linear.bias.copy_((-coefficients * float(project @ m)).float())


CLASS_NAMES = {
    "classify": {0: "bus-like", 1: "bus-ish", 2: "zidane-ish", 3: "zidane-like"},
    "semantic": {0: "pc1-low", 1: "pc1-mid", 2: "pc1-high"},
    "depth": {0: "depth"},
}


def build_family_checkpoint(family: str, task: str, out_dir: Path, imgsz: int = IMGSZ) -> Path:
    """Write ``out_dir/<yaml stem>.pt``: ``family``'s ``task`` model, built as the module docstring says."""
    import ultralytics

    name = FAMILIES[family][task]
    torch.manual_seed(0)
    wrapper = {"RT-DETR": "RTDETR", "YOLOE": "YOLOE", "YOLO-World": "YOLOWorld"}.get(family, "YOLO")
    yolo = getattr(ultralytics, wrapper)(name, **({"task": task} if wrapper == "YOLO" else {}))
    names = CLASS_NAMES.get(task, {0: "person"})
    torch.manual_seed(0)
    model = type(yolo.model)(name, nc=len(names), verbose=False)
    model.names = dict(names)
    borrow_pose_weights(model)
    if family in PROMPTED:
        set_fixed_prompts(model, family, names)
    if family == "YOLO12":
        damp_attention(model)
    views = test_views(imgsz)
    recalibrate_batchnorm(model, views)
    if family == "RT-DETR":
        calibrate_rtdetr_bias(model, views)
    elif family in PROMPTED:
        calibrate_contrastive_bias(model, views)
    elif task in ("detect", "segment", "pose", "obb"):
        calibrate_detection_bias(model, views)
    elif task == "semantic":
        fit_semantic_head(model, views)
    elif task == "depth":
        fit_depth_head(model, views)
    elif task == "classify":
        fit_classify_head(model, imgsz)
        from ultralytics.data.augment import classify_transforms

        model.transforms = classify_transforms(imgsz)
    model.task = task
    model.args = {"task": task, "imgsz": imgsz}
    if task == "pose" and getattr(model, "kpt_shape", None) is None:
        model.kpt_shape = model.yaml["kpt_shape"]  # set by the trainer before 8.3; AutoBackend reads it
    path = out_dir / f"{Path(name).stem}.pt"
    train_args = {"task": task, "imgsz": imgsz}
    if legacy_ultralytics():  # their Model.save writes only what was loaded: nothing for a model built from YAML
        torch.save({"model": model, "train_args": train_args, "version": ultralytics.__version__}, path)
        return path
    yolo.model = model
    yolo.ckpt = {**(getattr(yolo, "ckpt", None) or {}), "train_args": train_args}
    yolo.save(str(path))
    return path
