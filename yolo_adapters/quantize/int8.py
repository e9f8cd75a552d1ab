"""INT8 post-training quantization, the flow every engine shares (``Quantizer.run``), with the engine's steps as hooks.

``run`` does what does not depend on the engine: the calibration split and tensors at the model's static shape, the
float scope found by the graph walk, the progress bar, the report (agreement with FP32 and metrics on the held-back
images) beside the INT8 artifact, and removing the FP32 one. An engine's quantizer (``backends.<engine>.int8``)
reads its graph, quantizes it, saves it and says how it did (the report's ``quantization`` section).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from yolo_adapters.core.model_info import read_artifact_info
from yolo_adapters.errors import ConversionError, OptionError
from yolo_adapters.quantize.calibration import calibration_inputs, calibration_section, calibration_split, static_shape
from yolo_adapters.quantize.plan import plan_settings
from yolo_adapters.quantize.report import int8_report, kept_in_float

if TYPE_CHECKING:
    from yolo_adapters.backends.base import BackendPlugin, ExportPlan


@dataclass
class Int8Job:
    """What one quantization works with; the engine's hooks read what they need of it."""

    plugin: BackendPlugin
    plan: ExportPlan
    settings: Mapping[str, Any]  # plan_settings(plan): calibration folder, size, holdout, max_drop...
    fp32: Path
    int8: Path  # where the INT8 artifact goes (Quantizer.int8_path)
    info: Any  # the FP32 artifact's ModelInfo
    task: str
    model: Any  # the FP32 graph as the engine read it (Quantizer.read)
    shape: tuple[int, int, int, int]  # calibration tensors' shape: the model's static input shape
    batches: list[np.ndarray]
    scope: dict[str, list[str]]  # ops kept in float, by reason (graph.float_scope)
    ignored: list[str]  # their names: the quantizer's ignore list
    held: list[Path]  # held-back images: the report, and accuracy control
    keypoints: int | None  # a pose head's keypoint channels where that branch stays in float
    progress: Callable[[np.ndarray], np.ndarray]  # call on each calibration batch as the quantizer takes it


class Quantizer(ABC):
    """One engine's INT8 quantizer: the steps that differ by engine; ``run`` is the rest."""

    #: The quantizer's name in "... could not quantize" errors (NNCF, ONNX Runtime).
    label: str = "the quantizer"
    #: Whether a pose model's keypoint branch stays in float (``graph.float_scope``'s keypoint channels).
    keypoint_branch_in_float: bool = False

    @abstractmethod
    def read(self, fp32: Path) -> Any:
        """The FP32 artifact as the graph walk (``quantize.graph``) and the quantizer take it."""

    @abstractmethod
    def int8_path(self, fp32: Path) -> Path:
        """Where the INT8 artifact of ``fp32`` goes (beside it, in the same cache entry)."""

    @abstractmethod
    def quantize_graph(self, job: Int8Job) -> tuple[Any, dict[str, Any] | None]:
        """The quantized model, and the report's ``accuracy_control`` section (None without accuracy control).
        Any exception but an OptionError becomes a ConversionError naming the file."""

    @abstractmethod
    def save(self, quantized: Any, job: Int8Job) -> None:
        """Write ``quantized`` at ``job.int8`` with the FP32 artifact's metadata (task, names, stride...)."""

    @abstractmethod
    def describe(self, quantized: Any, job: Int8Job) -> dict[str, Any]:
        """The report's ``quantization`` section: tool, preset, settings, quantizer counts (the float scope is added)."""

    @abstractmethod
    def remove_fp32(self, fp32: Path) -> None:
        """Remove the FP32 artifact (the cache keeps only what runs)."""

    def run(self, fp32: Path, plan: ExportPlan, plugin: BackendPlugin, keep_fp32: bool = False) -> Path:
        """Quantize the FP32 artifact at ``fp32`` (``int8_path``); the report goes next to it; the FP32 artifact
        is removed afterwards unless ``keep_fp32`` (precision="auto" still has to time it against INT8)."""
        plugin.quantizer_version()  # the quantizer installed, or the error saying how to install it
        settings = plan_settings(plan)
        info = read_artifact_info(fp32)
        task = info.task or "detect"
        root, calib_images, held = calibration_split(settings)
        model = self.read(fp32)
        shape = static_shape(plugin.input_shape(fp32), plan)
        keypoints = keypoint_channels(info) if self.keypoint_branch_in_float else None
        batches, scope, ignored = calibration_inputs(model, calib_images, shape, task, info.stride or 32, keypoints)

        bar = tqdm(total=len(batches), desc="yolo_adapters: INT8 calibration", unit="batch")

        def progress(tensor: np.ndarray) -> np.ndarray:
            if bar.n < bar.total:
                bar.update()
            return tensor

        job = Int8Job(
            plugin=plugin,
            plan=plan,
            settings=settings,
            fp32=fp32,
            int8=self.int8_path(fp32),
            info=info,
            task=task,
            model=model,
            shape=shape,
            batches=batches,
            scope=scope,
            ignored=ignored,
            held=held,
            keypoints=keypoints,
            progress=progress,
        )
        try:
            quantized, control = self.quantize_graph(job)
        except OptionError:
            raise
        except Exception as exc:
            raise ConversionError(f"{self.label} could not quantize {fp32}: {type(exc).__name__}: {exc}") from exc
        finally:
            bar.close()
        job.int8.parent.mkdir(parents=True, exist_ok=True)
        self.save(quantized, job)
        quantization = {**self.describe(quantized, job), **kept_in_float(model, scope, ignored)}
        section = calibration_section(settings, root, calib_images, held, len(batches))
        int8_report(plugin, fp32, job.int8, plan, info, shape, section, held, quantization, control)
        if not keep_fp32:
            self.remove_fp32(fp32)
        return job.int8


def keypoint_channels(info: Any) -> int | None:
    """A pose model's keypoint head output channels (keypoints x dims), else None."""
    shape = getattr(info, "kpt_shape", None)
    if (info.task or "detect") != "pose" or not shape:
        return None
    return int(shape[0]) * int(shape[1])
