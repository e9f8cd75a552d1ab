"""A backend plugin that lives only in the tests: ONNX Runtime on the CPU under another name ("toyort").

Written from the plugin contract alone (``yolo_adapters.backends.base``) and registered through the entry-point
group ``yolo_adapters.backends`` by the ``.dist-info`` folder beside it, as a third-party package would be: it proves
that predict, check, Ray, bench, precision="int8" and precision="auto" work for an engine the package has never heard
of. INT8 and auto come from ``PrecisionFlows`` and the hooks below (``quantizer_version``, ``quantize``: ONNX
Runtime's static quantizer, reused as a third party may). ``toyort_broken`` is the same engine with its outputs
scaled, which every comparison with PyTorch must reject.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from yolo_adapters.backends.base import BackendPlugin, Engine, ExportPlan
from yolo_adapters.quantize.plugin import PrecisionFlows


class ToyEngine(Engine):
    """One CPU InferenceSession; ``scale`` multiplies every output (1.0: the model's own answers). ``precision``:
    what the file is (an INT8 file carries its QDQ nodes, so the session runs it as it is)."""

    def __init__(self, artifact: Path, scale: float = 1.0, precision: str = "fp32") -> None:
        super().__init__()
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0]
        self.input_shape = tuple(d if isinstance(d, int) else -1 for d in first.shape)
        self._input = first.name
        self.scale = scale
        self.precision = precision

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        self._count()
        outputs = self.session.run(None, {self._input: batch})
        return [np.asarray(o) * self.scale for o in outputs] if self.scale != 1.0 else list(outputs)


class ToyPlugin(PrecisionFlows, BackendPlugin):
    name = "toyort"
    default_device = "cpu"
    artifact_suffixes: ClassVar[tuple[str, ...]] = (".onnx",)
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "int8", "auto")
    auto_candidates: ClassVar[tuple[str, ...]] = ("fp32", "int8")
    #: What every output is multiplied by.
    scale: ClassVar[float] = 1.0

    def missing_requirements(self) -> str | None:
        for module in ("onnxruntime", "onnx"):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed: pip install {module}."
        return None

    def engine_version(self) -> str:
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"

    def quantizer_version(self) -> str:
        return self.engine_version()

    def export_plan(self, device: str, options: Mapping[str, Any], imgsz: Sequence[int], batch: int) -> ExportPlan:
        plan = self.make_plan("onnx", options, imgsz, batch, cpu=True)
        return self.precision_plan(plan, options, device)

    def quantize(self, artifact: Path, plan: ExportPlan, keep_fp32: bool = False) -> Path:
        from yolo_adapters.backends.onnxruntime.int8 import ORTQuantizer

        return ORTQuantizer().run(artifact, plan, self, keep_fp32)

    def load(self, artifact: Path, device: str, options: Mapping[str, Any]) -> Engine:
        return ToyEngine(artifact, self.scale, self.run_precision(artifact, options))


class ToyBrokenPlugin(ToyPlugin):
    name = "toyort_broken"
    scale = 1.25
