"""ONNX Runtime: Ultralytics models as ONNX files run by one InferenceSession on any execution provider.

Device strings name an execution provider by its short name (``cpu``, ``cuda:1``, ``tensorrt``, ``openvino``,
``dml``, ...) or its full name (``CUDAExecutionProvider``). A provider this ONNX Runtime build lacks is an
error listing the ones it has, unless ``fallback=True`` asked for the CPU instead.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from ..errors import BackendUnavailableError, ConversionError, DeviceError, ModelFormatError, OptionError
from ..quantize import QUANT_OPTIONS
from .base import Backend, Engine, ExportPlan

LOGGER = logging.getLogger("yolo_adapters")

_SUFFIX = "ExecutionProvider"
_CPU = "CPUExecutionProvider"
#: Spellings people use that are not ONNX Runtime's own short names (those come from get_all_providers()).
_ALIASES = {"trt": "tensorrt", "directml": "dml", "ov": "openvino"}
#: Providers whose device index goes into the provider option ``device_id``.
_DEVICE_ID = {
    "CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider", "MIGraphXExecutionProvider",
    "DmlExecutionProvider", "CANNExecutionProvider",
}  # fmt: skip
#: Providers for which IO binding is on by default (io_binding=None): those whose memory is not the host's.
_DEVICE_MEMORY = _DEVICE_ID
_LEVELS = {
    "disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL",
}  # fmt: skip
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}

_warned_lock = threading.Lock()
_warned: set[str] = set()  # fallback warnings already given in this process


def short_name(provider: str) -> str:
    """``"CUDAExecutionProvider"`` -> ``"cuda"``: the spelling used in device strings and messages."""
    name = provider[: -len(_SUFFIX)] if provider.lower().endswith(_SUFFIX.lower()) else provider
    name = name.lower()
    return _ALIASES.get(name, name)


class ONNXRuntimeBackend(Backend):
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
        **QUANT_OPTIONS,  # precision="int8": calibration, calibration_size, holdout (yolo_adapters.quantize)
    }
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8")

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
        if level is not None and level.lower() not in _LEVELS:
            raise OptionError(f"graph_optimization={level!r} is not an ONNX Runtime level; use one of {tuple(_LEVELS)}.")
        for key in ("intra_op_threads", "inter_op_threads"):
            if checked.get(key) is not None and checked[key] < 0:
                raise OptionError(f"{key}={checked[key]} must be >= 0 (0 lets ONNX Runtime choose).")
        if checked.get("opset") is not None and checked["opset"] < 7:
            raise OptionError(f"opset={checked['opset']} is not an ONNX opset Ultralytics exports to; use 11 or later.")
        return checked

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
        with _warned_lock:
            if provider in _warned:
                return
            _warned.add(provider)
        LOGGER.warning(
            "yolo_adapters: ONNX Runtime has no usable %s here (available: %s); fallback=True, running on "
            "CPUExecutionProvider instead.", provider, ", ".join(available),
        )  # fmt: skip

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
        if plan.precision == "int8":  # FP32 export, quantized with onnxruntime.quantization in finish_artifact
            from ..quantize import int8_plan

            plan = int8_plan(plan, options, self.name)
        return plan

    def finish_artifact(self, exported: Path, plan: ExportPlan) -> Path:
        artifact = self.find_artifact(exported) or exported
        if plan.precision == "fp16":
            ensure_fp16(artifact)
        if plan.precision == "int8":
            from ..quantize import quantize_onnx

            artifact = quantize_onnx(artifact, plan)
        return artifact

    def load(self, artifact: Path, device: str, options: Mapping[str, Any]) -> Engine:
        return ONNXRuntimeEngine(self, artifact, device, options)


def ensure_fp16(path: Path) -> bool:
    """Make the ONNX file at ``path`` FP16 (float32 inputs and outputs kept); False if it already was.

    Ultralytics' own CPU FP16 export exists only in recent versions (older ones drop or reject half=True on a
    CPU ONNX export), so the backend always exports FP32 and runs the maintained converter that ships with
    onnxruntime (onnxruntime.transformers.float16) here, with the settings Ultralytics 8.4 uses.
    """
    import onnx

    model = onnx.load(str(path))
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return False
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:  # very old onnxruntime builds without the transformers tools
        raise ConversionError(
            f"precision='fp16' needs onnxruntime.transformers.float16 ({exc}); upgrade onnxruntime or use fp32."
        ) from exc
    onnx.save(convert_float_to_float16(model, keep_io_types=True), str(path))
    return True


_pool: Any = None


def _executor() -> Any:
    """Two threads shared by every session: enough to overlap one run with the Python stages around it."""
    global _pool
    with _warned_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="yolo_adapters-ort")
        return _pool


class ONNXRuntimeEngine(Engine):
    """One InferenceSession; its ``run`` is thread-safe, so predictor threads share it without a lock."""

    def __init__(self, backend: ONNXRuntimeBackend, artifact: Path, device: str, options: Mapping[str, Any]) -> None:
        super().__init__()
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as state

        providers = backend.resolve_providers(device, options)
        session_options = ort.SessionOptions()
        if options.get("intra_op_threads") is not None:
            session_options.intra_op_num_threads = int(options["intra_op_threads"])
        if options.get("inter_op_threads") is not None:
            session_options.inter_op_num_threads = int(options["inter_op_threads"])
        level = _LEVELS[(options.get("graph_optimization") or "all").lower()]
        session_options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        try:
            self.session = ort.InferenceSession(str(artifact), sess_options=session_options, providers=providers)
        except (state.InvalidProtobuf, state.InvalidGraph, state.NoSuchFile) as exc:
            raise ModelFormatError(
                f"ONNX Runtime cannot read {artifact} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}). "
                "The file is corrupt or incomplete: re-export it, or pass the .pt."
            ) from exc
        except Exception as exc:
            raise DeviceError(
                f"ONNX Runtime could not open {artifact} on {', '.join(p for p, _ in providers)}: {exc}"
            ) from exc
        wanted = providers[0][0]
        if wanted not in self.session.get_providers():
            # ONNX Runtime drops a provider whose libraries fail to load (CUDA, cuDNN, TensorRT) with a log line only.
            available = self.session.get_providers()
            if not options.get("fallback"):
                raise DeviceError(
                    f"ONNX Runtime could not start {wanted} (its libraries failed to load; see ONNX Runtime's log "
                    f"above). Session providers: {', '.join(available)}. Pass fallback=True to run on the CPU instead."
                )
            backend.warn_fallback(wanted, available)
        self.providers = list(self.session.get_providers())
        first = self.session.get_inputs()[0]
        self._input = first.name
        self._outputs = [o.name for o in self.session.get_outputs()]  # model order
        self.input_shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in first.shape)
        self.input_dtype = np.dtype(_ORT_DTYPES.get(first.type, np.float32))
        io_binding = options.get("io_binding")
        self.io_binding = bool(self.providers[0] in _DEVICE_MEMORY if io_binding is None else io_binding)

    def submit(self, batch: np.ndarray) -> Any:
        """Run ``batch`` on a worker thread (``run`` releases the GIL and is thread-safe); returns a Future."""
        return _executor().submit(self.infer, batch)

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        self._count()
        if not self.io_binding:
            return self.session.run(self._outputs, {self._input: batch})
        binding = self.session.io_binding()  # one per call: a binding is not shareable between threads
        binding.bind_cpu_input(self._input, batch)
        for name in self._outputs:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()
