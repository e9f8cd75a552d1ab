"""A backend plugin that lives only in the tests: ONNX Runtime on the CPU under another name ("toyort").

Written from the plugin contract alone (``yolo_adapters.backends.base``) and registered through the entry-point
group ``yolo_adapters.backends`` by the ``.dist-info`` folder beside it, as a third-party package would be: it proves
that predict, check, Ray and bench work for an engine the package has never heard of. ``toyort_broken`` is the same
engine with its outputs scaled, which every comparison with PyTorch must reject.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from yolo_adapters.backends.base import BackendPlugin, Engine, ExportPlan


class ToyEngine(Engine):
    """One CPU InferenceSession; ``scale`` multiplies every output (1.0: the model's own answers)."""

    def __init__(self, artifact: Path, scale: float = 1.0) -> None:
        super().__init__()
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0]
        self.input_shape = tuple(d if isinstance(d, int) else -1 for d in first.shape)
        self._input = first.name
        self.scale = scale

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        self._count()
        outputs = self.session.run(None, {self._input: batch})
        return [np.asarray(o) * self.scale for o in outputs] if self.scale != 1.0 else list(outputs)


class ToyPlugin(BackendPlugin):
    name = "toyort"
    default_device = "cpu"
    artifact_suffixes: ClassVar[tuple[str, ...]] = (".onnx",)
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
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

    def export_plan(self, device: str, options: Mapping[str, Any], imgsz: Sequence[int], batch: int) -> ExportPlan:
        return self.make_plan("onnx", options, imgsz, batch, cpu=True)

    def load(self, artifact: Path, device: str, options: Mapping[str, Any]) -> Engine:
        return ToyEngine(artifact, self.scale)


class ToyBrokenPlugin(ToyPlugin):
    name = "toyort_broken"
    scale = 1.25
