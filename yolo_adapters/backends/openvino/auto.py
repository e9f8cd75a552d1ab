"""precision="auto" on OpenVINO: the fastest precision whose agreement with FP32 on your images meets the
tolerances.

The candidates are FP32 (the reference), BF16 where the device computes it natively (``bf16_supported``: AMX or
AVX512-BF16 CPUs) and INT8 (NNCF, calibrated on the ``calibration`` folder exactly as ``precision="int8"``). Each
is compared with FP32 on the held-back images of that folder through Ultralytics' predictor (the INT8 report's
agreement section), each is timed side by side (compiled model, THROUGHPUT hint, rounds alternating between the
candidates), and ``quantize.choice.pick`` keeps the fastest that meets the tolerances. The kept IR, with
``precision_choice.json`` (every figure measured) beside it, is the cache entry; the engine compiles it as the
choice says. Measuring happens once, inside the conversion, like the INT8 calibration it includes. What every
engine shares (the option checks, the alternating rounds, keeping the choice) is ``quantize.auto``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolo_adapters.backends.openvino.engine import bf16_supported, core
from yolo_adapters.backends.openvino.int8 import plan_target, quantize_openvino, static_shape, with_target
from yolo_adapters.backends.openvino.timing import compile_for_throughput, throughput
from yolo_adapters.core.model_info import read_artifact_info
from yolo_adapters.errors import ConversionError
from yolo_adapters.quantize import int8_plan, plan_settings, read_report
from yolo_adapters.quantize.auto import (
    TIMING_ROUNDS,
    TIMING_SECONDS,
    auto_facts,
    check_auto_options,
    for_seconds,
    keep_choice,
    time_side_by_side,
    with_auto_key,
)
from yolo_adapters.quantize.calibration import calibration_batches, calibration_split
from yolo_adapters.quantize.choice import shortfalls
from yolo_adapters.quantize.report import agreement_report

if TYPE_CHECKING:
    from yolo_adapters.backends.base import BackendPlugin, ExportPlan

LOGGER = logging.getLogger(__name__)
#: Each candidate's INFERENCE_PRECISION_HINT, as the engine compiles it (engine.py: fp32 and int8 mean f32).
HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def auto_plan(plan: ExportPlan, options: Mapping[str, Any], plugin: BackendPlugin, device: str) -> ExportPlan:
    """``plan`` for precision='auto': the INT8 plan (calibration content, recipe and ISA in the key) plus the
    tolerances and whether the device has bf16 (another CPU may choose otherwise)."""
    tolerance = check_auto_options(options, "'fp32', 'bf16', 'int8'")
    plan = with_target(int8_plan(plan, options, plugin), device)
    return with_auto_key(plan, tolerance, bf16=bf16_supported(device))


def choose_precision(fp32_xml: Path, plan: ExportPlan, plugin: BackendPlugin) -> Path:
    """Build, measure and judge the candidates; keep the chosen IR (the others are removed) and return it."""
    settings = plan_settings(plan)
    tolerance = auto_facts(plan)["tolerance"]
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
        LOGGER.warning("precision='auto' leaves INT8 out: %s", str(exc).splitlines()[0])
        candidates["int8"] = {"agreement": None, "shortfalls": [f"not built: {str(exc).splitlines()[0]}"]}
    else:
        agreement = (read_report(artifacts["int8"]) or {}).get("agreement")
        candidates["int8"] = {"agreement": agreement, "shortfalls": shortfalls(agreement, tolerance)}

    shape = static_shape(core().read_model(str(fp32_xml)), plan)
    tensors = calibration_batches(held, shape, task, info.stride or 32, desc="letterboxing held-back images")
    compiled = {
        name: compile_for_throughput(xml, precision=HINTS[name], device=device) for name, xml in artifacts.items()
    }

    def timed(name: str) -> float:
        return throughput(compiled[name], for_seconds(tensors), tensors[0])["fps"] * len(tensors[0])  # images/s

    rounds = time_side_by_side(list(artifacts), timed)
    record = {
        "device": device,
        "isa": target["isa"],
        "tolerance": tolerance,
        "images": len(held),
        "timing": {
            "shape": list(shape),
            "seconds": TIMING_SECONDS,
            "rounds": TIMING_ROUNDS,
            "hint": "THROUGHPUT",
            "fps": "images/s of the compiled model, inference only, best round",
        },
    }
    return keep_choice(artifacts, candidates, rounds, record)
