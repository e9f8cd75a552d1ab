"""precision="auto", the part every engine shares: the options it needs, its key in the cache, the candidates
timed side by side, and the choice kept on disk.

An engine's own ``auto.py`` (``backends/openvino``, ``backends/onnxruntime``) builds its candidates (FP32, INT8 and
whatever else it computes natively) and says how to time one; this module checks the options before any export,
alternates the timing rounds, judges with ``choice`` and keeps only the chosen artifact with its
``precision_choice.json``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from tqdm.auto import tqdm

from yolo_adapters.errors import OptionError
from yolo_adapters.quantize.calibration import find_images, split_holdout
from yolo_adapters.quantize.choice import pick, tolerance_of, write_choice
from yolo_adapters.quantize.report import REPORT_FILE

if TYPE_CHECKING:
    from yolo_adapters.backends.base import ExportPlan

LOGGER = logging.getLogger(__name__)
AUTO_KEY = "yolo_adapters_auto"  # in ExportPlan.extra: part of the cache key, not an exporter argument
#: Each candidate is timed ``TIMING_ROUNDS`` times for ``TIMING_SECONDS``, rounds alternating between candidates so
#: that a busy moment on a shared machine hits them alike; the best round counts.
TIMING_SECONDS = 1.5
TIMING_ROUNDS = 2


def check_auto_options(options: Mapping[str, Any], engine_precisions: str) -> dict[str, float]:
    """The tolerances of ``options``; fails before any export without calibration images, without held-back images
    to measure agreement on, or with a tolerance that is not an agreement figure. ``engine_precisions`` names what
    the user could pick instead (``"'fp32', 'bf16', 'int8'"``)."""
    if not options.get("calibration"):
        raise OptionError(
            "precision='auto' measures each precision against FP32 on your images: pass calibration='IMAGES_DIR' "
            "(Python) or --data IMAGES_DIR (CLI), a folder of images like the ones the model will see (no labels "
            f"needed; INT8 is calibrated on them and the held-back part judges agreement). Or pick a precision: "
            f"{engine_precisions}."
        )
    if not split_holdout(find_images(options["calibration"]), options.get("holdout"))[1]:
        raise OptionError("precision='auto' judges agreement on held-back images: holdout must be >= 1.")
    return tolerance_of(options)


def check_tolerance_option(checked: Mapping[str, Any]) -> None:
    """``tolerance`` only means something with precision='auto': say so, and check its figures, before any export."""
    if checked.get("tolerance") is None:
        return
    if checked.get("precision") != "auto":
        raise OptionError(
            "tolerance bounds what precision='auto' may keep; with precision="
            f"{checked.get('precision') or 'fp32'!r} nothing is chosen: add precision='auto' or leave it out."
        )
    tolerance_of(checked)


def with_auto_key(plan: ExportPlan, tolerance: Mapping[str, float], **facts: Any) -> ExportPlan:
    """``plan`` with the tolerances and the engine's ``facts`` (what the device computes natively...) in its cache
    key: another tolerance, or a machine that would choose otherwise, converts again."""
    key = (("tolerance", tuple(sorted(tolerance.items()))), *sorted(facts.items()), ("scheme", 1))
    return dataclasses.replace(plan, extra=tuple(plan.extra) + ((AUTO_KEY, key),))


def auto_facts(plan: ExportPlan) -> dict[str, Any]:
    """What ``with_auto_key`` put in ``plan``: ``tolerance`` (a dict) and the engine's facts."""
    facts = dict(dict(plan.extra)[AUTO_KEY])
    facts["tolerance"] = dict(facts["tolerance"])
    return facts


def time_side_by_side(names: list[str], timed: Callable[[str], float]) -> dict[str, list[float]]:
    """``timed(name)`` (images/s of one round) for each candidate, ``TIMING_ROUNDS`` rounds alternating between
    them, with a progress bar."""
    fps: dict[str, list[float]] = {name: [] for name in names}
    with tqdm(total=TIMING_ROUNDS * len(names), desc="yolo_adapters: timing candidates", unit="run") as bar:
        for _ in range(TIMING_ROUNDS):
            for name in names:
                bar.set_postfix_str(name)
                fps[name].append(timed(name))
                bar.update()
    return fps


def for_seconds(tensors: list[np.ndarray], seconds: float = TIMING_SECONDS) -> Iterator[np.ndarray]:
    """``tensors`` over and over for ``seconds`` from the first one taken (after the compile and warm-up)."""
    deadline = None
    for tensor in itertools.cycle(tensors):
        now = time.perf_counter()
        deadline = deadline or now + seconds
        if now >= deadline:
            return
        yield tensor


def keep_choice(
    artifacts: Mapping[str, Path],
    candidates: dict[str, dict[str, Any]],
    rounds: Mapping[str, list[float]],
    record: Mapping[str, Any],
) -> Path:
    """Judge (``choice.pick``), keep the chosen artifact with ``precision_choice.json`` beside it, and remove the
    others (the cache keeps what runs). ``record`` adds the engine's facts (device, timing settings...)."""
    for name, fps in rounds.items():
        candidates[name]["fps_rounds"] = fps
        candidates[name]["fps"] = max(fps)
    chosen = pick(candidates)
    kept = artifacts[chosen]
    for path in set(artifacts.values()) - {kept}:
        if path.parent == kept.parent:
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path.parent, ignore_errors=True)
    if chosen != "int8":  # an INT8 report beside the FP32 model it did not replace would mislead
        (kept.parent / REPORT_FILE).unlink(missing_ok=True)
    write_choice(kept.parent, {"chosen": chosen, **record, "candidates": candidates})
    LOGGER.info(
        "precision='auto' chose %s (%s)",
        chosen,
        ", ".join(f"{n} {c.get('fps', 0):.1f} img/s" for n, c in candidates.items()),
    )
    return kept
