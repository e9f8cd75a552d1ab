"""ONNX Runtime: Ultralytics models as ONNX files run by one InferenceSession on any execution provider.

Device strings name an execution provider by its short name (``cpu``, ``cuda:1``, ``tensorrt``, ``openvino``,
``dml``, ...) or its full name (``CUDAExecutionProvider``). A provider this ONNX Runtime build lacks is an
error listing the ones it has, unless ``fallback=True`` asked for the CPU instead.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from yolo_adapters.backends.base import BackendPlugin, Engine, ExportPlan
from yolo_adapters.backends.onnxruntime.engine import DEVICE_MEMORY, LEVELS, ONNXRuntimeEngine
from yolo_adapters.backends.onnxruntime.fp16 import ensure_fp16, fp16_copy
from yolo_adapters.core.logs import warn_once
from yolo_adapters.errors import BackendUnavailableError, DeviceError, OptionError
from yolo_adapters.quantize import PrecisionFlows

LOGGER = logging.getLogger(__name__)

_SUFFIX = "ExecutionProvider"
_CPU = "CPUExecutionProvider"
#: Spellings people use that are not ONNX Runtime's own short names (those come from get_all_providers()).
_ALIASES = {"trt": "tensorrt", "directml": "dml", "ov": "openvino"}
#: Providers whose device index goes into the provider option ``device_id`` (those with device memory).
_DEVICE_ID = DEVICE_MEMORY


def short_name(provider: str) -> str:
    """``"CUDAExecutionProvider"`` -> ``"cuda"``: the spelling used in device strings and messages."""
    name = provider[: -len(_SUFFIX)] if provider.lower().endswith(_SUFFIX.lower()) else provider
    name = name.lower()
    return _ALIASES.get(name, name)


class ONNXRuntimePlugin(PrecisionFlows, BackendPlugin):
    name = "onnxruntime"
    device_aliases = ("ort",)
    extra = "onnxruntime"
    default_device = "cpu"
    artifact_suffixes = (".onnx",)
    option_types: ClassVar[dict[str, tuple[type, ...]]] = {
        "intra_op_threads": (int,),
        "inter_op_threads": (int,),
        "graph_optimization": (str,),
        "provider_options": (dict,),
        "io_binding": (bool, type(None)),
        "fallback": (bool,),
        "opset": (int,),
    }  # and precision="int8"/"auto"'s (BackendPlugin.precision_option_types)
    # auto: FP32, FP16 and INT8 measured on the calibration images, the fastest that agrees with FP32 kept
    # (yolo_adapters.quantize.auto, through the precision hooks below)
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8", "auto")

    def missing_requirements(self) -> str | None:
        if importlib.util.find_spec("onnxruntime") is None:
            return (
                "ONNX Runtime is not installed: pip install 'yolo-adapters[onnxruntime]' "
                "(or pip install onnxruntime; onnxruntime-gpu for CUDA and TensorRT)."
            )
        return None

    def normalize_device(self, prefix: str, spec: str) -> str:
        # "CUDAExecutionProvider:1" and "cuda:1" are the same device; the index (or OpenVINO device type) stays as given.
        provider, sep, index = spec.partition(":")
        return f"{short_name(provider.strip())}{sep}{index.strip()}" if provider.strip() else self.default_device

    def available_devices(self) -> list[str]:
        import onnxruntime as ort

        return [short_name(p) for p in ort.get_available_providers()]

    def environment(self) -> dict[str, Any]:
        """Execution providers of this build (full names) and the build's default device."""
        if self.missing_requirements() is not None:
            return {}
        import onnxruntime as ort

        return {"providers": list(ort.get_available_providers()), "build_device": ort.get_device()}

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate_options(options)
        level = checked.get("graph_optimization")
        if level is not None and level.lower() not in LEVELS:
            raise OptionError(f"graph_optimization={level!r} is not an ONNX Runtime level; use one of {tuple(LEVELS)}.")
        for key in ("intra_op_threads", "inter_op_threads"):
            if checked.get(key) is not None and checked[key] < 0:
                raise OptionError(f"{key}={checked[key]} must be >= 0 (0 lets ONNX Runtime choose).")
        if checked.get("opset") is not None and checked["opset"] < 7:
            raise OptionError(f"opset={checked['opset']} is not an ONNX opset Ultralytics exports to; use 11 or later.")
        return checked

    def quantizer_version(self) -> str:
        if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
            raise BackendUnavailableError(
                "precision='int8' on onnxruntime quantizes with onnxruntime.quantization, which needs onnxruntime and "
                "onnx: pip install 'yolo-adapters[onnxruntime]'."
            )
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"

    def engine_version(self) -> str:
        # The artifact is Ultralytics' ONNX export plus our FP16 pass (onnxruntime.transformers): both versions count.
        import onnxruntime as ort

        try:
            import onnx

            return f"onnxruntime {ort.__version__}, onnx {onnx.__version__}"
        except ImportError:
            return f"onnxruntime {ort.__version__}"

    # -- providers ------------------------------------------------------------------------------------
    def resolve_providers(self, device: str, options: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The ``providers`` list for an InferenceSession: the requested provider with its options, then the
        providers ONNX Runtime hands unsupported nodes to. Raises DeviceError (or falls back to CPU)."""
        import onnxruntime as ort

        short, _, index = (device or self.default_device).partition(":")
        known = {short_name(p): p for p in ort.get_all_providers()}
        available = list(ort.get_available_providers())
        provider = known.get(short_name(short))
        if provider is None:
            raise DeviceError(
                f"ONNX Runtime knows no execution provider {short!r}. Providers of this build: "
                f"{', '.join(available)}. Example: device='onnxruntime:{short_name(available[0]) if available else 'cpu'}'."
            )
        if provider not in available:
            if options.get("fallback"):
                self.warn_fallback(provider, available)
                return [(_CPU, {})]
            raise DeviceError(
                f"ONNX Runtime has no {provider} here. Available providers: {', '.join(available) or 'none'}. "
                f"Install the ONNX Runtime build that has it (onnxruntime-gpu for CUDA/TensorRT, onnxruntime-openvino, "
                f"onnxruntime-directml...), or pass fallback=True to run on the CPU instead."
            )
        provider_options: dict[str, Any] = {}
        if index:
            if index.isdigit() and provider in _DEVICE_ID:
                provider_options["device_id"] = int(index)
            elif provider == "OpenVINOExecutionProvider":
                provider_options["device_type"] = index  # onnxruntime:openvino:GPU
            else:
                raise DeviceError(
                    f"{provider} takes no device {index!r}; write device='onnxruntime:{short_name(provider)}'."
                )
        provider_options.update(options.get("provider_options") or {})
        chain = [(provider, provider_options)]
        if provider == "TensorrtExecutionProvider" and "CUDAExecutionProvider" in available:
            # Nodes TensorRT cannot build run on CUDA on the same GPU rather than on the CPU.
            chain.append(("CUDAExecutionProvider", {k: v for k, v in provider_options.items() if k == "device_id"}))
        if provider != _CPU:
            chain.append((_CPU, {}))
        return chain

    @staticmethod
    def warn_fallback(provider: str, available: Sequence[str]) -> None:
        """fallback=True: say once per process and provider that the CPU runs instead."""
        warn_once(
            LOGGER,
            provider,
            "ONNX Runtime has no usable %s here (available: %s); fallback=True, running on "
            "CPUExecutionProvider instead.",
            provider,
            ", ".join(available),
        )

    # -- models ---------------------------------------------------------------------------------------
    def export_plan(self, device: str, options: Mapping[str, Any], imgsz: Sequence[int], batch: int) -> ExportPlan:
        if importlib.util.find_spec("onnx") is None:  # Ultralytics would try to pip-install it mid-export
            raise BackendUnavailableError(
                "Converting a .pt for ONNX Runtime needs the onnx package: pip install 'yolo-adapters[onnxruntime]'."
            )
        providers = self.resolve_providers(device, options)  # fail (or fall back) before a minute of conversion
        extra: list[tuple[str, Any]] = []
        if options.get("opset") is not None:
            extra.append(("opset", int(options["opset"])))
        if options.get("precision") == "fp16":
            # Ultralytics < 8.4.1xx drops half=True on a CPU ONNX export, and asserts when it is also dynamic:
            # export FP32 on every version and make it FP16 in finish_artifact (the converter 8.4 itself uses).
            extra += [("half", False), ("quantize", None)]  # whichever of the two this Ultralytics knows
        plan = self.make_plan("onnx", options, imgsz, batch, cpu=providers[0][0] == _CPU, extra=tuple(extra))
        return self.precision_plan(plan, options, device)  # int8, auto: FP32 export, converted in finish_artifact

    def finish_artifact(self, exported: Path, plan: ExportPlan) -> Path:
        if plan.precision == "fp16":
            ensure_fp16(self.find_artifact(exported) or exported)
        return super().finish_artifact(exported, plan)  # and INT8 or precision="auto" (finish_precision)

    # -- precision: the hooks yolo_adapters.quantize's INT8 and precision="auto" flows call ----------------------
    auto_candidates = ("fp32", "fp16", "int8")
    timing_record: ClassVar[dict[str, str]] = {
        "fps": "images/s of the engine's InferenceSession, 2 runs in flight on its thread pool, inference only, "
        "best round"
    }

    def precision_facts(self, precision: str, device: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """For "auto": the execution provider the candidates are timed on (another provider may choose otherwise),
        and the device as it runs (the CPU where ``fallback=True`` fell back to it). INT8 itself is the same file
        on every provider."""
        if precision != "auto":
            return {}
        provider = self.resolve_providers(device, options)[0][0]
        return {"device": "cpu" if provider == _CPU else device, "provider": provider}

    def quantize(self, artifact: Path, plan: ExportPlan, keep_fp32: bool = False) -> Path:
        from yolo_adapters.backends.onnxruntime.int8 import ORTQuantizer  # onnxruntime.quantization only when used

        return ORTQuantizer().run(artifact, plan, self, keep_fp32)

    def input_shape(self, artifact: Path) -> tuple[int, ...]:
        import onnx

        dims = onnx.load(str(artifact), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
        return tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in dims)

    def build_candidate(self, name: str, fp32_artifact: Path, plan: ExportPlan) -> Path:
        """FP16: a copy of the FP32 file through ONNX Runtime's float16 converter, as ``precision="fp16"``."""
        if name == "fp16":
            return fp16_copy(fp32_artifact)
        return super().build_candidate(name, fp32_artifact, plan)

    def load(self, artifact: Path, device: str, options: Mapping[str, Any]) -> Engine:
        return ONNXRuntimeEngine(self, artifact, device, options)

    # -- Ray actors --------------------------------------------------------------------------------------
    #: Providers whose device is a GPU card: an actor running one asks Ray for a "GPU" and opens the card Ray gave it.
    ray_gpu_providers: ClassVar[tuple[str, ...]] = ("cuda", "tensorrt", "rocm", "migraphx")

    def accelerator_request(self, device: str, cluster: Mapping[str, float]) -> tuple[float | None, dict[str, float]]:
        """One Ray GPU for a GPU provider, when the cluster has GPUs (else the device is opened as given)."""
        if device.partition(":")[0] in self.ray_gpu_providers and cluster.get("GPU", 0) >= 1:
            return 1.0, {}
        return None, {}

    def accelerator_device(self, device: str, assigned: Mapping[str, Sequence[Any]], env: Mapping[str, str]) -> str:
        """``cuda`` with Ray GPU 4 assigned: ``cuda:0`` where Ray set ``CUDA_VISIBLE_DEVICES`` (``ROCR_VISIBLE_DEVICES``
        for ROCm), the physical ``cuda:4`` where it was told not to (``RAY_EXPERIMENTAL_NOSET_*``)."""
        ids = [str(i) for i in assigned.get("GPU", ())]
        provider = device.partition(":")[0]
        if not ids or provider not in self.ray_gpu_providers:
            return device
        visible = env.get("CUDA_VISIBLE_DEVICES") if provider != "rocm" else env.get("ROCR_VISIBLE_DEVICES")
        return f"{provider}:{0 if visible else ids[0]}"

    def thread_options(self, options: Mapping[str, Any], threads: int) -> dict[str, Any]:
        """ONNX Runtime's ``intra_op_threads``, unless the user set it."""
        out = dict(options)
        out.setdefault("intra_op_threads", int(threads))
        return out

    # -- bench -------------------------------------------------------------------------------------------
    native_format = "onnx"

    def bench_native_rows(self) -> dict[str, Any]:
        return {"Ultralytics native ONNX": lambda: lambda: None}

    def machine_facts(self) -> dict[str, str]:
        import onnxruntime

        return {"ONNX Runtime": onnxruntime.__version__}
