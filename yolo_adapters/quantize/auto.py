"""precision="auto": the fastest precision whose agreement with FP32 on your images meets the tolerances.

``choose_precision`` is the one flow, against the plugin's hooks: the candidates are FP32 (the reference) and what
``precision_candidates(device)`` adds (OpenVINO: BF16 where the device computes it natively; ONNX Runtime: FP16),
each made by ``build_candidate`` (INT8 by ``quantize``, calibrated on the ``calibration`` folder exactly as
``precision="int8"``). Each is compared with FP32 on the held-back images of that folder through Ultralytics'
predictor (the INT8 report's agreement section), all are timed side by side through ``timing_session`` (rounds
alternating between the candidates), and ``choice.pick`` keeps the fastest that meets the tolerances. The kept
artifact, with ``precision_choice.json`` (every figure measured) beside it, is the cache entry; the engine runs it as
the choice says. Measuring happens once, inside the conversion, like the INT8 calibration it includes.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from tqdm.auto import tqdm

from yolo_adapters.core.model_info import read_artifact_info
from yolo_adapters.errors import ConversionError, OptionError
from yolo_adapters.quantize.calibration import (
    calibration_batches,
    calibration_split,
    find_images,
    split_holdout,
    static_shape,
)
from yolo_adapters.quantize.choice import pick, shortfalls, tolerance_of, write_choice
from yolo_adapters.quantize.plan import auto_tolerance, plan_facts, plan_settings
from yolo_adapters.quantize.report import REPORT_FILE, agreement_report, read_report

if TYPE_CHECKING:
    from yolo_adapters.backends.base import BackendPlugin, ExportPlan

LOGGER = logging.getLogger(__name__)
#: Each candidate is timed ``TIMING_ROUNDS`` times for ``TIMING_SECONDS``, rounds alternating between candidates so
#: that a busy moment on a shared machine hits them alike; the best round counts.
TIMING_SECONDS = 1.5
TIMING_ROUNDS = 2


def check_auto_options(options: Mapping[str, Any], engine_precisions: str) -> dict[str, float]:
    """The tolerances of ``options``; fails before any export without calibration images, without held-back images
    to measure agreement on, or with a tolerance that is not an agreement figure. ``engine_precisions`` names what
    the user could pick instead (``"'fp32', 'bf16', 'int8'"``: the plugin's ``auto_candidates``)."""
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


def choose_precision(fp32_artifact: Path, plan: ExportPlan, plugin: BackendPlugin) -> Path:
    """Build, measure and judge the candidates; keep the chosen artifact (the others are removed) and return it."""
    facts = plan_facts(plan)
    tolerance = auto_tolerance(plan)
    device = str(facts["device"])
    info = read_artifact_info(fp32_artifact)
    task = info.task or "detect"
    _, _, held = calibration_split(plan_settings(plan))

    artifacts: dict[str, Path] = {"fp32": fp32_artifact}
    candidates: dict[str, dict[str, Any]] = {"fp32": {"agreement": None, "shortfalls": []}}
    for name in plugin.precision_candidates(device):
        if name == "fp32":
            continue
        try:
            if name == "int8":
                artifact = plugin.quantize(fp32_artifact, plan, keep_fp32=True)
            else:
                artifact = plugin.build_candidate(name, fp32_artifact, plan)
        except ConversionError as exc:  # FP32 (and the others) still stand: say why this one is out, keep going
            reason = str(exc).splitlines()[0]
            LOGGER.warning("precision='auto' leaves %s out: %s", name.upper(), reason)
            candidates[name] = {"agreement": None, "shortfalls": [f"not built: {reason}"]}
            continue
        artifacts[name] = artifact
        if name == "int8":  # measured by the quantizer's report, on the same held-back images
            agreement = (read_report(artifact) or {}).get("agreement")
        else:
            agreement = agreement_report(fp32_artifact, artifact, held, plan, task, plugin, precision=name)
        candidates[name] = {"agreement": agreement, "shortfalls": shortfalls(agreement, tolerance)}

    shape = static_shape(plugin.input_shape(fp32_artifact), plan)
    tensors = calibration_batches(held, shape, task, info.stride or 32, desc="letterboxing held-back images")
    sessions = {name: plugin.timing_session(path, device, {"precision": name}) for name, path in artifacts.items()}

    def timed(name: str) -> float:
        return float(sessions[name](for_seconds(tensors), tensors[0])["fps"]) * len(tensors[0])  # images/s

    rounds = time_side_by_side(list(artifacts), timed)
    record = {
        **facts,
        "tolerance": tolerance,
        "images": len(held),
        "timing": {"shape": list(shape), "seconds": TIMING_SECONDS, "rounds": TIMING_ROUNDS, **plugin.timing_record},
    }
    return keep_choice(artifacts, candidates, rounds, record)
