"""Huawei Ascend: Ultralytics models as CANN offline models (.om) run by ais_bench's ``InferSession``.

Device strings: ``ascend`` (NPU 0), ``ascend:1``, ``ascend:0,1`` (one session per NPU, batches spread over
them), and ``npu``/``npu:N`` when torch_npu is not installed (with torch_npu, ``npu`` stays PyTorch's).
A ``.pt`` is exported to ONNX by Ultralytics and compiled by CANN's ``atc`` into the conversion cache, with
an explicit precision mode; an ``.om`` file or an Ultralytics ``*_ascend_model/`` folder is used as it is.
The ais_bench and ATC contract this code relies on is written down in docs/ascend.md ("The ais_bench and ATC
contract"); ``yolo_adapters.testing`` emulates it, FP16 arithmetic included, for machines without a card.

One module per job: ``cann`` (probing npu-smi, the SoC, atc's flags), ``sessions`` (the InferSession pool),
``precision`` (ATC precision modes per SoC and the parity they reach), ``atc`` (the converter), ``engine``
and ``plugin``.
"""

from __future__ import annotations

from yolo_adapters.backends.ascend.atc import artifact_precision, atc_command
from yolo_adapters.backends.ascend.cann import SOC_ENV, atc_has_precision_mode_v2, detect_soc, npu_count, resolve_soc
from yolo_adapters.backends.ascend.engine import AscendEngine
from yolo_adapters.backends.ascend.plugin import DEFAULT_GEARS, AscendPlugin, parse_device_ids
from yolo_adapters.backends.ascend.precision import FP16_OUTPUT_TOLERANCES, Precision, default_mode, tolerances

__all__ = [
    "DEFAULT_GEARS",
    "FP16_OUTPUT_TOLERANCES",
    "SOC_ENV",
    "AscendEngine",
    "AscendPlugin",
    "Precision",
    "artifact_precision",
    "atc_command",
    "atc_has_precision_mode_v2",
    "default_mode",
    "detect_soc",
    "npu_count",
    "parse_device_ids",
    "resolve_soc",
    "tolerances",
]
