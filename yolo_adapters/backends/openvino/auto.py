"""precision="auto" on OpenVINO: the fastest precision whose agreement with FP32 on your images meets the
tolerances.

The candidates are FP32 (the reference), BF16 where the device computes it natively (``bf16_supported``: AMX or
AVX512-BF16 CPUs) and INT8 (NNCF, calibrated on the ``calibration`` folder exactly as ``precision="int8"``). Each
is compared with FP32 on the held-back images of that folder through Ultralytics' predictor (the INT8 report's
agreement section), each is timed side by side (compiled model, THROUGHPUT hint, rounds alternating between the
candidates), and ``quantize.choice.pick`` keeps the fastest that meets the tolerances. The kept IR, with
``precision_choice.json`` (every figure measured) beside it, is the cache entry; the engine compiles it as the
choice says. Measuring happens once, inside the conversion, like the INT8 calibration it includes.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np
from tqdm.auto import tqdm

from ...errors import ConversionError, OptionError
from ...model_info import read_artifact_info
from ...quantize import int8_plan, plan_settings, read_report
from ...quantize.calibration import calibration_batches, calibration_split, split_holdout, find_images
from ...quantize.choice import pick, shortfalls, tolerance_of, write_choice
from ...quantize.report import agreement_report
from .engine import bf16_supported, core
from .int8 import plan_target, quantize_openvino, static_shape, with_target
from .timing import compile_for_throughput, throughput

if TYPE_CHECKING:
    from ..base import BackendPlugin, ExportPlan

LOGGER = logging.getLogger("yolo_adapters")
AUTO_KEY = "yolo_adapters_auto"  # in ExportPlan.extra: part of the cache key, not an exporter argument
#: Each candidate is timed ``TIMING_ROUNDS`` times for ``TIMING_SECONDS``, rounds alternating between candidates so
#: that a busy moment on a shared machine hits them alike; the best round counts.
TIMING_SECONDS = 1.5
TIMING_ROUNDS = 2
#: Each candidate's INFERENCE_PRECISION_HINT, as the engine compiles it (engine.py: fp32 and int8 mean f32).
HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def auto_plan(plan: "ExportPlan", options: Mapping[str, Any], plugin: "BackendPlugin", device: str) -> "ExportPlan":
    """``plan`` for precision='auto': the INT8 plan (calibration content, recipe and ISA in the key) plus the
    tolerances and whether the device has bf16 (another CPU may choose otherwise). Fails here, before any export,
    without calibration images or without held-back images to measure agreement on."""
    if not options.get("calibration"):
        raise OptionError(
            "precision='auto' measures each precision against FP32 on your images: pass calibration='IMAGES_DIR' "
            "(Python) or --data IMAGES_DIR (CLI), a folder of images like the ones the model will see (no labels "
            "needed; INT8 is calibrated on them and the held-back part judges agreement). Or pick a precision: "
            "'fp32', 'bf16', 'int8'."
        )
    if not split_holdout(find_images(options["calibration"]), options.get("holdout"))[1]:
        raise OptionError("precision='auto' judges agreement on held-back images: holdout must be >= 1.")
    tolerance = tolerance_of(options)
    plan = with_target(int8_plan(plan, options, plugin), device)
    key = (("tolerance", tuple(sorted(tolerance.items()))), ("bf16", bf16_supported(device)), ("scheme", 1))
    return dataclasses.replace(plan, extra=tuple(plan.extra) + ((AUTO_KEY, key),))


def choose_precision(fp32_xml: Path, plan: "ExportPlan", plugin: "BackendPlugin") -> Path:
    """Build, measure and judge the candidates; keep the chosen IR (the others are removed) and return it."""
    settings = plan_settings(plan)
    tolerance = dict(dict(dict(plan.extra)[AUTO_KEY])["tolerance"])
    target = plan_target(plan)
    device = target["device"]
    info = read_artifact_info(fp32_xml)
    task = info.task or "detect"
    _, _, held = calibration_split(settings)

    artifacts: dict[str, Path] = {"fp32": fp32_xml}
    candidates: dict[str, dict[str, Any]] = {"fp32": {"agreement": None, "shortfalls": []}}
    if bf16_supported(device):
        artifacts["bf16"] = fp32_xml
        agreement = agreement_report(fp32_xml, fp32_xml, held, plan, task, plugin, precision="bf16")
        candidates["bf16"] = {"agreement": agreement, "shortfalls": shortfalls(agreement, tolerance)}
    try:
        artifacts["int8"] = quantize_openvino(fp32_xml, plan, plugin, keep_fp32=True)
    except ConversionError as exc:  # FP32 (and BF16) still stand: say why INT8 is out, keep going
        LOGGER.warning("yolo_adapters: precision='auto' leaves INT8 out: %s", str(exc).splitlines()[0])
        candidates["int8"] = {"agreement": None, "shortfalls": [f"not built: {str(exc).splitlines()[0]}"]}
    else:
        agreement = (read_report(artifacts["int8"]) or {}).get("agreement")
        candidates["int8"] = {"agreement": agreement, "shortfalls": shortfalls(agreement, tolerance)}

    shape = static_shape(core().read_model(str(fp32_xml)), plan)
    tensors = calibration_batches(held, shape, task, info.stride or 32, desc="letterboxing held-back images")
    rounds = _time_side_by_side(artifacts, tensors, device)
    for name, fps in rounds.items():
        candidates[name]["fps_rounds"] = fps
        candidates[name]["fps"] = max(fps)
    chosen = pick(candidates)

    kept = artifacts[chosen]
    for name, path in artifacts.items():
        if path.parent != kept.parent:
            shutil.rmtree(path.parent, ignore_errors=True)  # the cache keeps only what runs
    choice = {
        "chosen": chosen,
        "device": device,
        "isa": target["isa"],
        "tolerance": tolerance,
        "images": len(held),
        "timing": {"shape": list(shape), "seconds": TIMING_SECONDS, "rounds": TIMING_ROUNDS, "hint": "THROUGHPUT",
                   "fps": "images/s of the compiled model, inference only, best round"},  # fmt: skip
        "candidates": candidates,
    }
    write_choice(kept.parent, choice)
    LOGGER.info("yolo_adapters: precision='auto' chose %s (%s)", chosen,
                ", ".join(f"{n} {c.get('fps', 0):.1f} img/s" for n, c in candidates.items()))  # fmt: skip
    return kept


def _time_side_by_side(artifacts: Mapping[str, Path], tensors: list[np.ndarray], device: str) -> dict[str, list[float]]:
    """Throughput of each candidate, rounds alternating between them (so a busy moment hits them alike)."""
    compiled = {name: compile_for_throughput(xml, precision=HINTS[name], device=device) for name, xml in artifacts.items()}
    fps: dict[str, list[float]] = {name: [] for name in artifacts}
    with tqdm(total=TIMING_ROUNDS * len(artifacts), desc="yolo_adapters: timing candidates", unit="run") as bar:
        for _ in range(TIMING_ROUNDS):
            for name, model in compiled.items():
                bar.set_postfix_str(name)
                timed = throughput(model, _for_seconds(tensors, TIMING_SECONDS), tensors[0])
                fps[name].append(timed["fps"] * len(tensors[0]))  # batches/s to images/s
                bar.update()
    return fps


def _for_seconds(tensors: list[np.ndarray], seconds: float) -> Iterator[np.ndarray]:
    """``tensors`` over and over for ``seconds`` from the first one taken (after the compile and warm-up)."""
    deadline = None
    for tensor in itertools.cycle(tensors):
        now = time.perf_counter()
        deadline = deadline or now + seconds
        if now >= deadline:
            return
        yield tensor
