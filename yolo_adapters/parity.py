"""Does an engine give PyTorch's answers? Compare two Ultralytics ``Results`` for every task.

The same tolerances gate the test suite and ``yolo-adapters check``: matched boxes IoU >= 0.99, scores within
1e-3, keypoints within 1 px, masks IoU >= 0.98, same top-1 class.
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
        return problems

    def passed(self, tol: Tolerances = DEFAULT_TOLERANCES) -> bool:
        return not self.failures(tol)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _task(result: Any) -> str:
    if result.probs is not None:
        return "classify"
    if result.obb is not None:
        return "obb"
    if result.keypoints is not None:
        return "pose"
    if result.masks is not None:
        return "segment"
    return "detect"


def compare_results(reference: Any, candidate: Any, conf: float = 0.25, tol: Tolerances = DEFAULT_TOLERANCES) -> Agreement:
    """Match the candidate's detections to the reference's and measure how far apart they are.

    Detections whose score lies within ``2 * tol.score`` of ``conf`` may legitimately appear on one side only
    (they straddle the threshold); every other unmatched detection is a failure.
    """
    import torch

    task = _task(reference)
    out = Agreement(task=task)
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
                out.unmatched.append(f"{side} detection {i} (class {int(boxes.cls[i])}, score {score:.3f}) has no match")
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


def match_detections(boxes_ref: Any, boxes_cand: Any, task: str) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of same-class detections by IoU (highest first)."""
    if not len(boxes_ref) or not len(boxes_cand):
        return []
    from ultralytics.utils.metrics import batch_probiou, box_iou

    if task == "obb":
        iou = batch_probiou(boxes_ref.xywhr.float().cpu(), boxes_cand.xywhr.float().cpu())
    else:
        iou = box_iou(boxes_ref.xyxy.float().cpu(), boxes_cand.xyxy.float().cpu())
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
