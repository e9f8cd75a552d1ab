"""precision="auto", the engine-neutral part: the tolerances a candidate precision must meet against FP32, and
the choice among the candidates that meet them.

A candidate's agreement with FP32 is the section the INT8 report already has (``report.summarize_agreement`` on
the held-back images, through Ultralytics' predictor), so "meets the tolerances" reads the figures a user sees in
``quantization_report.json``. ``auto`` measures the speeds (the plugin's ``timing_session``); this module only judges.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from yolo_adapters.core.logs import warn_once
from yolo_adapters.errors import OptionError
from yolo_adapters.quantize.report import read_beside, write_beside

LOGGER = logging.getLogger(__name__)

#: Where ``precision="auto"`` records what it measured and chose, beside the chosen model.
CHOICE_FILE = "precision_choice.json"

#: The agreement figures a tolerance can bound: those where higher is better (at least the value)...
AT_LEAST = (
    "confident_recall",
    "mean_box_iou",
    "min_box_iou",
    "top1_agreement",
    "min_mask_iou",
    "min_pixel_agreement",
    "mean_person_oks",
    "min_confident_person_oks",
)
#: ...and those where lower is better (at most the value). Keypoints in original-image pixels, after NMS.
AT_MOST = (
    "mean_keypoint_px",
    "worst_person_keypoint_px",
    "max_score_diff",
    "anchor_keypoint_px",
    "max_depth_diff",
    "mean_depth_diff",
)

#: The default tolerances, the accuracy targets INT8 is held to (docs/quantization.md, "Held-out figures"): every
#: FP32 detection with conf >= 0.5 found, boxes nearly where FP32 puts them, keypoints 1.5 px from FP32's on average
#: and no person over 5 px, classify's top-1 unchanged; semantic: 97% of pixels with FP32's class on every image (the
#: share parity asks of an engine against PyTorch); depth: a mean distance to FP32's depth of at most 2% of its range
#: on every image (semantic and depth defaults are a judgement, not measured on trained models: none are available
#: offline). A figure the task does not have is not judged.
DEFAULT_TOLERANCE: dict[str, float] = {
    "confident_recall": 1.0,
    "mean_box_iou": 0.95,
    "mean_keypoint_px": 1.5,
    "worst_person_keypoint_px": 5.0,
    "top1_agreement": 1.0,
    "min_pixel_agreement": 0.97,
    "mean_depth_diff": 0.02,
}

#: Most to least precise: when two candidates that meet the tolerances run within ``SPEED_MARGIN`` of each other,
#: the more precise one is chosen (one short timing on a shared CPU cannot tell a difference that small).
PRECISION_ORDER = ("fp32", "fp16", "bf16", "int8")
SPEED_MARGIN = 1.05


def tolerance_of(options: Mapping[str, Any]) -> dict[str, float]:
    """The defaults updated with the user's ``tolerance`` option; a clear error for a figure that is not one."""
    given = options.get("tolerance") or {}
    unknown = sorted(set(given) - set(AT_LEAST) - set(AT_MOST))
    if unknown:
        raise OptionError(
            f"tolerance={dict(given)!r}: {', '.join(unknown)} is not an agreement figure; use any of "
            f"{', '.join(AT_LEAST)} (at least) or {', '.join(AT_MOST)} (at most)."
        )
    tolerance = dict(DEFAULT_TOLERANCE)
    for key, value in given.items():
        if value is None:
            tolerance.pop(key, None)  # tolerance={"worst_person_keypoint_px": None}: not judged
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(f"tolerance[{key!r}]={value!r} must be a number (or None: not judged).")
        tolerance[key] = float(value)
    return tolerance


def shortfalls(agreement: Mapping[str, Any] | None, tolerance: Mapping[str, float]) -> list[str]:
    """Why ``agreement`` (a report's agreement section) misses ``tolerance``: one line per figure out of bounds,
    empty when it meets them all. Figures the agreement lacks (None: not this task) are not judged."""
    if agreement is None:
        return ["no agreement measured (no held-back images)"]
    missed = []
    for key, bound in tolerance.items():
        value = agreement.get(key)
        if value is None:
            continue
        if key in AT_LEAST and value < bound:
            missed.append(f"{key} {value:.3g} < {bound:g}")
        elif key in AT_MOST and value > bound:
            missed.append(f"{key} {value:.3g} > {bound:g}")
    return missed


def pick(candidates: Mapping[str, Mapping[str, Any]]) -> str:
    """The fastest candidate whose ``shortfalls`` are empty (``fps`` measured side by side); a more precise one
    within ``SPEED_MARGIN`` of it wins. FP32, the reference, always meets them, so there is always a choice."""
    qualified = {name: c for name, c in candidates.items() if not c.get("shortfalls") and c.get("fps")}
    if not qualified:
        return "fp32"
    fastest = max(c["fps"] for c in qualified.values())
    ranked = sorted(qualified, key=lambda name: PRECISION_ORDER.index(name))
    return next(name for name in ranked if qualified[name]["fps"] * SPEED_MARGIN >= fastest)


def write_choice(folder: Path, choice: Mapping[str, Any]) -> Path:
    return write_beside(folder, CHOICE_FILE, choice)


def read_choice(artifact: str | Path) -> dict[str, Any] | None:
    """The choice ``precision="auto"`` recorded beside ``artifact`` (an .xml or its folder); None without one."""
    return read_beside(artifact, CHOICE_FILE)


def chosen_precision(artifact: str | Path, known: Sequence[str]) -> str:
    """What an engine given ``precision="auto"`` runs ``artifact`` as: the recorded choice (one of ``known``); a
    model given as is (no choice beside it) runs as FP32, said once per model in one line."""
    chosen = (read_choice(artifact) or {}).get("chosen")
    if chosen in known:
        return str(chosen)
    warn_once(
        LOGGER,
        str(artifact),
        "precision='auto' chooses while converting a .pt; %s was given as is and runs as FP32.",
        artifact,
    )
    return "fp32"


def chosen_in(entry: Path) -> str | None:
    """What ``precision="auto"`` kept in a cache entry's folder (for ``yolo-adapters cache list``)."""
    found = next(iter(sorted(entry.rglob(CHOICE_FILE))), None) if entry.is_dir() else None
    return (read_choice(found) or {}).get("chosen") if found else None


def format_choice(choice: Mapping[str, Any]) -> str:
    """The CLI's summary: one line per candidate (speed, tolerances met or what missed) and the choice."""
    lines = [
        f"precision='auto' chose {choice['chosen']} (the fastest meeting the tolerances on "
        f"{choice.get('images', '?')} held-back images; tolerance {choice.get('tolerance')})"
    ]
    for name, c in choice.get("candidates", {}).items():
        verdict = "meets the tolerances" if not c.get("shortfalls") else "misses: " + "; ".join(c["shortfalls"])
        fps = f"{c['fps']:.1f} img/s" if c.get("fps") else "not timed"
        lines.append(f"  {name:5s} {fps:>12s}  {verdict}")
    return "\n".join(lines)
