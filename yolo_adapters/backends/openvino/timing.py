"""Inference-only throughput of a compiled OpenVINO model: what ``yolo-adapters bench`` reports as the limit rows
and what ``precision="auto"`` compares its candidates by."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from yolo_adapters.backends.openvino.engine import core


def compile_for_throughput(
    xml: str | Path, hint: str = "THROUGHPUT", precision: str = "f32", device: str = "CPU"
) -> Any:
    """``xml`` compiled as ``throughput`` measures it; ``precision`` is OpenVINO's INFERENCE_PRECISION_HINT
    (f32, bf16, f16). Compile once and time it several times (``precision="auto"`` alternates rounds)."""
    return core().compile_model(str(xml), device, {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": precision})


def throughput(
    model: Any,
    tensors: Iterable[np.ndarray],
    warmup: np.ndarray,
    hint: str = "THROUGHPUT",
    precision: str = "f32",
    device: str = "CPU",
) -> dict[str, Any]:
    """An AsyncInferQueue on ``model`` (an IR path, compiled here with ``hint``/``precision``/``device``, or a model
    from ``compile_for_throughput``) fed ``tensors`` as fast as they come, after two warm-up batches per request.

    Given a list of pre-processed tensors, that is ``benchmark_app -hint throughput``; given a generator that
    decodes and letterboxes each frame just before it is queued, the least any pipeline over a video must do."""
    import openvino as ov

    compiled = compile_for_throughput(model, hint, precision, device) if isinstance(model, (str, Path)) else model
    jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    stamps: list[float] = []
    infer_queue = ov.AsyncInferQueue(compiled, jobs)
    infer_queue.set_callback(lambda request, userdata: stamps.append(time.perf_counter()))
    for _ in range(jobs * 2):
        infer_queue.start_async({0: warmup})
    infer_queue.wait_all()
    stamps.clear()
    count = 0
    start = time.perf_counter()
    for x in tensors:
        infer_queue.start_async({0: x})
        count += 1
    infer_queue.wait_all()
    total = max(stamps) - start
    gaps = np.diff([start, *sorted(stamps)]) * 1e3
    return {"frames": count, "fps": count / total, "gaps": gaps.tolist(), "requests": jobs}
