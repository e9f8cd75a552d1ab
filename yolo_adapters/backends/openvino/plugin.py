"""The OpenVINO plugin: device names, options, conversion plan (FP32/FP16 IR, INT8 through NNCF)."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from yolo_adapters.backends.base import BackendPlugin, Engine, ExportPlan
from yolo_adapters.backends.openvino.engine import OpenVINOEngine, core
from yolo_adapters.backends.openvino.onnx_to_ir import onnx_to_ir
from yolo_adapters.errors import BackendUnavailableError, DeviceError, OptionError
from yolo_adapters.quantize import QUANT_OPTIONS, int8_plan
from yolo_adapters.quantize.auto import check_tolerance_option

LOGGER = logging.getLogger(__name__)
_VIRTUAL = ("AUTO", "MULTI", "HETERO", "BATCH")
_HINTS = ("latency", "throughput", "cumulative_throughput")


class OpenVINOPlugin(BackendPlugin):
    name = "openvino"
    device_aliases = ("intel", "ov")
    extra = "openvino"
    default_device = "CPU"
    artifact_suffixes = (".xml", ".onnx")  # OpenVINO reads ONNX directly
    option_types: ClassVar[dict[str, tuple[type, ...]]] = {
        "hint": (str,),
        "config": (dict,),
        "compile_cache": (bool, str, Path),
        **QUANT_OPTIONS,  # precision="int8": calibration, calibration_size, holdout, max_drop... (yolo_adapters.quantize)
        "tolerance": (dict, type(None)),  # precision="auto": bounds on agreement with FP32 (quantize.choice)
    }
    # bf16: the FP32 IR (one cache entry with fp32), compiled with INFERENCE_PRECISION_HINT=bf16 (engine.py);
    # auto: FP32, BF16 and INT8 measured on the calibration images, the fastest that agrees with FP32 kept (auto.py)
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8", "bf16", "auto")

    def missing_requirements(self) -> str | None:
        if importlib.util.find_spec("openvino") is None:
            return "OpenVINO is not installed: pip install 'yolo-adapters[openvino]' (or pip install openvino)."
        return None

    def normalize_device(self, prefix: str, spec: str) -> str:
        # Ultralytics spells "intel:gpu"; OpenVINO wants "GPU". Device names are upper case in OpenVINO.
        return spec.upper() if spec else self.default_device

    def available_devices(self) -> list[str]:
        return list(core().available_devices)

    def environment(self) -> dict[str, Any]:
        """Each device OpenVINO sees with its full name (e.g. CPU: "Intel(R) Xeon(R) ...")."""
        if self.missing_requirements() is not None:
            return {}
        names = {}
        for device in self.available_devices():
            try:
                names[device] = str(core().get_property(device, "FULL_DEVICE_NAME"))
            except Exception:  # a device plugin that cannot answer still counts as present
                names[device] = ""
        return {"device_names": names}

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate_options(options)
        hint = checked.get("hint")
        if hint is not None and hint.lower() not in _HINTS:
            raise OptionError(f"hint={hint!r} is not an OpenVINO performance hint; use one of {_HINTS}.")
        check_tolerance_option(checked)  # now, not after an export
        return checked

    accuracy_control = True  # nncf.quantize_with_accuracy_control (max_drop)

    def quantizer_version(self) -> str:
        if importlib.util.find_spec("nncf") is None:
            raise BackendUnavailableError(
                "precision='int8' quantizes with NNCF, which is not installed: pip install 'yolo-adapters[int8]' "
                "(or pip install nncf)."
            )
        import nncf

        return f"nncf {nncf.__version__}"

    def engine_version(self) -> str:
        from importlib.metadata import version

        return version("openvino")

    def export_plan(self, device: str, options: Mapping[str, Any], imgsz: Sequence[int], batch: int) -> ExportPlan:
        plan = self.make_plan("openvino", options, imgsz, batch, cpu=device.upper() == "CPU")
        if plan.precision == "bf16":  # a compile-time hint: the IR is the FP32 one, shared with precision="fp32"
            plan = dataclasses.replace(plan, precision="fp32")
        if plan.precision == "int8":  # FP32 export, quantized with NNCF in finish_artifact
            from yolo_adapters.backends.openvino.int8 import (
                with_target,
            )  # the recipe depends on the CPU's ISA (VNNI or not): in the key

            plan = with_target(int8_plan(plan, options, self), device)
        if plan.precision == "auto":  # FP32 export; candidates built, measured and chosen in finish_artifact
            from yolo_adapters.backends.openvino.auto import auto_plan

            plan = auto_plan(plan, options, self, device)
        return plan

    def fallback_plan(self, plan: ExportPlan) -> ExportPlan | None:
        """Ultralytics' ONNX export, converted with ``openvino.convert_model`` in ``finish_artifact``: for releases
        whose OpenVINO exporter needs an older OpenVINO (8.1-8.3 import ``openvino.runtime``, gone in 2026).
        None without the onnx package (Ultralytics would try to pip-install it mid-export)."""
        if importlib.util.find_spec("onnx") is None:
            LOGGER.warning("the ONNX route to OpenVINO needs the onnx package (pip install onnx).")
            return None
        return dataclasses.replace(plan, format="onnx", precision="fp32")  # FP16 weights are made in onnx_to_ir

    def finish_artifact(self, exported: Path, plan: ExportPlan) -> Path:
        if exported.suffix == ".onnx":  # the fallback route: make the IR Ultralytics' own export would have made
            exported = onnx_to_ir(exported, plan)
        artifact = super().finish_artifact(exported, plan)
        if plan.precision == "int8":
            from yolo_adapters.backends.openvino.int8 import (
                quantize_openvino,
            )  # NNCF is imported only when something is quantized

            artifact = quantize_openvino(artifact, plan, self)
        elif plan.precision == "auto":
            from yolo_adapters.backends.openvino.auto import choose_precision

            artifact = choose_precision(artifact, plan, self)
        return artifact

    def check_device(self, device: str) -> None:
        """Reject a device OpenVINO does not see, listing the ones it does."""
        available = self.available_devices()
        families = {d.split(".")[0] for d in available}
        virtual, _, listed = device.partition(":")
        tokens = listed.split(",") if virtual in _VIRTUAL else [device]
        if virtual in _VIRTUAL and not listed:
            return
        for token in tokens:
            name = token.split("(")[0].strip()
            if name and name not in available and name not in families:
                raise DeviceError(
                    f"OpenVINO has no device {name!r} here. Available: {', '.join(available) or 'none'} "
                    f"(plus AUTO, MULTI:..., HETERO:...). Example: device='openvino:{available[0] if available else 'CPU'}'."
                )

    def load(self, artifact: Path, device: str, options: Mapping[str, Any]) -> Engine:
        return OpenVINOEngine(artifact, device, options)
