"""precision="auto" on ONNX Runtime: the fastest of FP32, FP16 and INT8 on this execution provider whose
agreement with FP32 on your images meets the tolerances.

The candidates are FP32 (the reference), FP16 (the same file through ONNX Runtime's float16 converter, as
``precision="fp16"``) and INT8 (``onnxruntime.quantization`` QDQ, calibrated on the ``calibration`` folder exactly
as ``precision="int8"``). Each is compared with FP32 on the held-back images through Ultralytics' predictor (the
INT8 report's agreement section), all are timed side by side in one InferenceSession each on the requested
provider, and ``quantize.auto`` keeps the chosen ONNX file with ``precision_choice.json``. The shared flow is
``quantize.auto``; this module only builds and times ONNX Runtime's candidates.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolo_adapters.backends.onnxruntime.fp16 import ensure_fp16
from yolo_adapters.backends.onnxruntime.int8 import quantize_onnx, static_shape
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
    from yolo_adapters.backends.base import ExportPlan
    from yolo_adapters.backends.onnxruntime.plugin import ONNXRuntimePlugin

LOGGER = logging.getLogger(__name__)


def auto_plan(plan: ExportPlan, options: Mapping[str, Any], plugin: ONNXRuntimePlugin, device: str) -> ExportPlan:
    """``plan`` for precision='auto': the INT8 plan (calibration content in the key) plus the tolerances and the
    execution provider the candidates are timed on (another provider may choose otherwise)."""
    tolerance = check_auto_options(options, "'fp32', 'fp16', 'int8'")
    provider = plugin.resolve_providers(device, options)[0][0]
    return with_auto_key(int8_plan(plan, options, plugin), tolerance, device=device, provider=provider)


def choose_precision(fp32_onnx: Path, plan: ExportPlan, plugin: ONNXRuntimePlugin) -> Path:
    """Build, measure and judge the candidates; keep the chosen ONNX file (the others are removed) and return it."""
    import onnx

    facts = auto_facts(plan)
    info = read_artifact_info(fp32_onnx)
    task = info.task or "detect"
    _, _, held = calibration_split(plan_settings(plan))

    artifacts: dict[str, Path] = {"fp32": fp32_onnx}
    candidates: dict[str, dict[str, Any]] = {"fp32": {"agreement": None, "shortfalls": []}}
    fp16 = fp32_onnx.with_name(fp32_onnx.stem + "_fp16.onnx")
    shutil.copyfile(fp32_onnx, fp16)
    try:
        ensure_fp16(fp16)
    except ConversionError as exc:  # an onnxruntime build without its float16 converter
        fp16.unlink(missing_ok=True)
        LOGGER.warning("precision='auto' leaves FP16 out: %s", str(exc).splitlines()[0])
        candidates["fp16"] = {"agreement": None, "shortfalls": [f"not built: {str(exc).splitlines()[0]}"]}
    else:
        artifacts["fp16"] = fp16
        agreement = agreement_report(fp32_onnx, fp16, held, plan, task, plugin, precision="fp16")
        candidates["fp16"] = {"agreement": agreement, "shortfalls": shortfalls(agreement, facts["tolerance"])}
    try:
        artifacts["int8"] = quantize_onnx(fp32_onnx, plan, plugin, keep_fp32=True)
    except ConversionError as exc:  # FP32 still stands: say why INT8 is out, keep going
        LOGGER.warning("precision='auto' leaves INT8 out: %s", str(exc).splitlines()[0])
        candidates["int8"] = {"agreement": None, "shortfalls": [f"not built: {str(exc).splitlines()[0]}"]}
    else:
        agreement = (read_report(artifacts["int8"]) or {}).get("agreement")
        candidates["int8"] = {"agreement": agreement, "shortfalls": shortfalls(agreement, facts["tolerance"])}

    shape = static_shape(onnx.load(str(fp32_onnx), load_external_data=False), plan)
    tensors = calibration_batches(held, shape, task, info.stride or 32, desc="letterboxing held-back images")
    sessions = {name: _session(path, plugin, facts["device"]) for name, path in artifacts.items()}

    def timed(name: str) -> float:
        return _images_per_second(sessions[name], tensors)

    rounds = time_side_by_side(list(artifacts), timed)
    record = {
        "device": facts["device"],
        "provider": facts["provider"],
        "tolerance": facts["tolerance"],
        "images": len(held),
        "timing": {
            "shape": list(shape),
            "seconds": TIMING_SECONDS,
            "rounds": TIMING_ROUNDS,
            "fps": "images/s of one InferenceSession, run after run, best round",
        },
    }
    return keep_choice(artifacts, candidates, rounds, record)


def _session(path: Path, plugin: ONNXRuntimePlugin, device: str) -> Any:
    """An InferenceSession as the engine opens one by default (all graph optimisations, the device's providers;
    the CPU where the plan already fell back to it, ``fallback=True``)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=plugin.resolve_providers(device, {"fallback": True}))


def _images_per_second(session: Any, tensors: list[Any]) -> float:
    """Images/s of ``session`` run back to back on ``tensors`` for ``TIMING_SECONDS``, after one warm-up run."""
    name = session.get_inputs()[0].name
    session.run(None, {name: tensors[0]})
    count, start = 0, time.perf_counter()
    for tensor in for_seconds(tensors):
        session.run(None, {name: tensor})
        count += len(tensor)
    return count / (time.perf_counter() - start)
