"""Does an engine give PyTorch's answers? Compare two Ultralytics ``Results`` for every task.

The same tolerances gate the test suite and ``yolo-adapters check``: matched boxes IoU >= 0.99, scores within
1e-3, keypoints within 1 px, masks IoU >= 0.98, same top-1 class and probabilities within 1e-3; semantic masks: at
least 97% of pixels with PyTorch's class, and every pixel where PyTorch's top class leads the next by more than
``semantic_tie`` logits (not a tie) with PyTorch's class; depth maps: no pixel further from PyTorch's depth than
0.1% of the map's range (max - min).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Tolerances:
    box_iou: float = 0.99
    score: float = 1e-3
    keypoint_px: float = 1.0
    mask_iou: float = 0.98
    prob: float = 1e-3
    semantic_pixels: float = 0.97  # share of pixels with PyTorch's class
    semantic_tie: float = 1.0  # logit margin (top class minus the next) below which a pixel counts as a tie
    depth_range: float = 1e-3  # max |depth difference| / (max - min of PyTorch's depth map)


DEFAULT_TOLERANCES = Tolerances()


@dataclass
class Agreement:
    """How one candidate result agrees with its reference (PyTorch) result."""

    task: str
    reference: int = 0  # detections in the reference
    candidate: int = 0  # detections in the candidate
    matched: int = 0
    unmatched: list[str] = field(default_factory=list)  # detections without a partner, away from the threshold
    min_box_iou: float = 1.0
    mean_box_iou: float = 1.0  # over matched pairs (1.0 when nothing was matched)
    max_score_diff: float = 0.0
    max_keypoint_px: float = 0.0
    mean_keypoint_px: float = 0.0
    min_mask_iou: float = 1.0
    top1_agree: bool = True
    max_prob_diff: float = 0.0
    pixel_agreement: float = 1.0  # semantic: share of pixels with the reference's class
    decided_mismatches: int = 0  # semantic: pixels whose reference margin is not a tie yet the class differs
    max_mismatch_margin: float = 0.0  # semantic: the largest reference margin among differing pixels (-1: unknown)
    max_depth_diff: float = 0.0  # depth: max |difference| / range of the reference map
    mean_depth_diff: float = 0.0  # depth: mean |difference| / range (a reduced precision's error, not one pixel's)

    def failures(self, tol: Tolerances = DEFAULT_TOLERANCES) -> list[str]:
        """Human-readable reasons this agreement misses the tolerances (empty when it passes)."""
        problems = list(self.unmatched)
        if self.min_box_iou < tol.box_iou:
            problems.append(f"box IoU {self.min_box_iou:.4f} < {tol.box_iou}")
        if self.max_score_diff > tol.score:
            problems.append(f"score difference {self.max_score_diff:.2e} > {tol.score}")
        if self.max_keypoint_px > tol.keypoint_px:
            problems.append(f"keypoint distance {self.max_keypoint_px:.3f}px > {tol.keypoint_px}px")
        if self.min_mask_iou < tol.mask_iou:
            problems.append(f"mask IoU {self.min_mask_iou:.4f} < {tol.mask_iou}")
        if not self.top1_agree:
            problems.append("top-1 class differs")
        if self.max_prob_diff > tol.prob:
            problems.append(f"probability difference {self.max_prob_diff:.2e} > {tol.prob}")
        if self.pixel_agreement < tol.semantic_pixels:
            problems.append(f"pixels with PyTorch's class {self.pixel_agreement:.4f} < {tol.semantic_pixels}")
        if self.decided_mismatches:
            problems.append(
                f"{self.decided_mismatches} pixel(s) differ where PyTorch's class leads by more than {tol.semantic_tie} "
                f"(up to {self.max_mismatch_margin:.3f})"
            )
        if self.max_depth_diff > tol.depth_range:
            problems.append(f"depth difference {self.max_depth_diff:.2e} of the range > {tol.depth_range}")
        return problems

    def passed(self, tol: Tolerances = DEFAULT_TOLERANCES) -> bool:
        return not self.failures(tol)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _task(result: Any) -> str:
    if getattr(result, "semantic_mask", None) is not None:
        return "semantic"
    if getattr(result, "depth", None) is not None:
        return "depth"
    if result.probs is not None:
        return "classify"
    if result.obb is not None:
        return "obb"
    if result.keypoints is not None:
        return "pose"
    if result.masks is not None:
        return "segment"
    return "detect"


def compare_results(
    reference: Any,
    candidate: Any,
    conf: float = 0.25,
    tol: Tolerances = DEFAULT_TOLERANCES,
    reference_margin: Any = None,
) -> Agreement:
    """Match the candidate's detections to the reference's and measure how far apart they are.

    Detections whose score lies within ``2 * tol.score`` of ``conf`` may legitimately appear on one side only
    (they straddle the threshold); every other unmatched detection is a failure.
    ``reference_margin`` (semantic only): PyTorch's per-pixel logit margin, top class minus the next, at the
    result's resolution (:func:`semantic_margin`); without it only the share of agreeing pixels is checked.
    """
    import torch

    task = _task(reference)
    out = Agreement(task=task)
    if task == "semantic":
        ref_map, cand_map = reference.semantic_mask.data.cpu(), candidate.semantic_mask.data.cpu()
        if ref_map.shape != cand_map.shape:
            out.pixel_agreement = 0.0
            return out
        differ = ref_map.long() != cand_map.long()
        out.pixel_agreement = 1.0 - float(differ.float().mean())
        if reference_margin is not None and bool(differ.any()):
            margins = torch.as_tensor(reference_margin).float().cpu()[differ]
            out.max_mismatch_margin = float(margins.max())
            out.decided_mismatches = int((margins > tol.semantic_tie).sum())
        return out
    if task == "depth":
        ref_map, cand_map = reference.depth.data.float().cpu(), candidate.depth.data.float().cpu()
        if ref_map.shape != cand_map.shape:
            out.max_depth_diff = out.mean_depth_diff = float("inf")
            return out
        span = float(ref_map.max() - ref_map.min()) or 1.0
        out.max_depth_diff = float((ref_map - cand_map).abs().max()) / span
        out.mean_depth_diff = float((ref_map - cand_map).abs().mean()) / span
        return out
    if task == "classify":
        p_ref, p_cand = reference.probs.data.float().cpu(), candidate.probs.data.float().cpu()
        out.top1_agree = int(p_ref.argmax()) == int(p_cand.argmax())
        out.max_prob_diff = float((p_ref - p_cand).abs().max())
        return out

    boxes_ref = reference.obb if task == "obb" else reference.boxes
    boxes_cand = candidate.obb if task == "obb" else candidate.boxes
    out.reference, out.candidate = len(boxes_ref), len(boxes_cand)
    pairs = match_detections(boxes_ref, boxes_cand, task)
    out.matched = len(pairs)
    near = conf + 2 * tol.score
    matched_ref, matched_cand = {i for i, _, _ in pairs}, {j for _, j, _ in pairs}
    for side, boxes, matched in (("reference", boxes_ref, matched_ref), ("candidate", boxes_cand, matched_cand)):
        for i in range(len(boxes)):
            score = float(boxes.conf[i])
            if i not in matched and score > near:
                out.unmatched.append(
                    f"{side} detection {i} (class {int(boxes.cls[i])}, score {score:.3f}) has no match"
                )
    if not pairs:
        return out
    out.min_box_iou = min(iou for _, _, iou in pairs)
    out.mean_box_iou = sum(iou for _, _, iou in pairs) / len(pairs)
    out.max_score_diff = max(abs(float(boxes_ref.conf[i]) - float(boxes_cand.conf[j])) for i, j, _ in pairs)
    if task == "pose":
        kr, kc = reference.keypoints.xy.float().cpu(), candidate.keypoints.xy.float().cpu()
        dists = torch.cat([(kr[i] - kc[j]).norm(dim=-1) for i, j, _ in pairs])
        out.max_keypoint_px, out.mean_keypoint_px = float(dists.max()), float(dists.mean())
    if task == "segment" and reference.masks is not None and candidate.masks is not None:
        mr, mc = reference.masks.data.cpu() > 0.5, candidate.masks.data.cpu() > 0.5
        ious = []
        for i, j, _ in pairs:
            union = (mr[i] | mc[j]).sum().item()
            ious.append((mr[i] & mc[j]).sum().item() / union if union else 1.0)
        out.min_mask_iou = min(ious)
    return out


def semantic_margin(logits: Any, input_shape: Any, orig_shape: Any) -> Any:
    """PyTorch's per-pixel margin (top logit minus the next) for a semantic model's raw ``(nc, h, w)`` logits, resized
    as its predictor resizes them: to the network input, then letterbox-cropped to the original image."""
    import torch.nn.functional as F
    from ultralytics.utils import ops

    x = logits.float()[None]
    if tuple(x.shape[2:]) != tuple(input_shape):
        x = F.interpolate(x, tuple(input_shape), mode="bilinear", align_corners=False)
    x = ops.scale_masks(x, tuple(orig_shape))[0]
    if x.shape[0] < 2:
        return x[0].abs()  # one class: the sign decides, the distance from zero is the margin
    top2 = x.topk(2, dim=0).values
    return top2[0] - top2[1]


def _thicken(xyxy: Any) -> Any:
    """Boxes under a pixel wide or high (clipped at the image border: zero area, so IoU 0 even with themselves)
    widened to one pixel around their centre line, so identical degenerate boxes still match each other."""
    out = xyxy.clone()
    for lo, hi in ((0, 2), (1, 3)):
        thin = (out[:, hi] - out[:, lo]) < 1
        centre = (out[thin, hi] + out[thin, lo]) / 2
        out[thin, lo], out[thin, hi] = centre - 0.5, centre + 0.5
    return out


def match_detections(boxes_ref: Any, boxes_cand: Any, task: str) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of same-class detections by IoU (highest first)."""
    if not len(boxes_ref) or not len(boxes_cand):
        return []
    from ultralytics.utils.metrics import batch_probiou, box_iou

    if task == "obb":
        iou = batch_probiou(boxes_ref.xywhr.float().cpu(), boxes_cand.xywhr.float().cpu())
    else:
        iou = box_iou(_thicken(boxes_ref.xyxy.float().cpu()), _thicken(boxes_cand.xyxy.float().cpu()))
    same_class = boxes_ref.cls.cpu()[:, None] == boxes_cand.cls.cpu()[None, :]
    iou = iou * same_class
    pairs: list[tuple[int, int, float]] = []
    used_r, used_c = set(), set()
    flat = sorted(((float(iou[i, j]), i, j) for i in range(iou.shape[0]) for j in range(iou.shape[1])), reverse=True)
    for value, i, j in flat:
        if value <= 0.5:
            break
        if i not in used_r and j not in used_c:
            used_r.add(i)
            used_c.add(j)
            pairs.append((i, j, value))
    return pairs
