"""The ONNX Runtime engine: one InferenceSession on the chosen execution providers, runs on a small thread pool."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolo_adapters.backends.base import Engine, Pending
from yolo_adapters.errors import DeviceError, EngineTimeoutError, ModelFormatError

if TYPE_CHECKING:
    from yolo_adapters.backends.onnxruntime.plugin import ONNXRuntimePlugin

#: Providers for which IO binding is on by default (io_binding=None): those whose memory is not the host's.
DEVICE_MEMORY = {
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "ROCMExecutionProvider",
    "MIGraphXExecutionProvider",
    "DmlExecutionProvider",
    "CANNExecutionProvider",
}
#: Graph optimisation levels by the names the ``graph_optimization`` option takes.
LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
_pool_lock = threading.Lock()

_pool: Any = None


def _executor() -> Any:
    """Two threads shared by every session: enough to overlap one run with the Python stages around it."""
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="yolo_adapters-ort")
        return _pool


class ONNXRuntimeEngine(Engine):
    """One InferenceSession; its ``run`` is thread-safe, so predictor threads share it without a lock."""

    precision = "fp32"  # the precision asked for (fp32, fp16, int8); for precision="auto", the one chosen

    def __init__(self, backend: ONNXRuntimePlugin, artifact: Path, device: str, options: Mapping[str, Any]) -> None:
        super().__init__()
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as state

        self.precision = options.get("precision") or "fp32"
        if self.precision == "auto":  # what the conversion kept (precision_choice.json beside the file)
            from yolo_adapters.quantize.choice import chosen_precision

            self.precision = chosen_precision(artifact, ("fp32", "fp16", "int8"))
        providers = backend.resolve_providers(device, options)
        session_options = ort.SessionOptions()
        if options.get("intra_op_threads") is not None:
            session_options.intra_op_num_threads = int(options["intra_op_threads"])
        if options.get("inter_op_threads") is not None:
            session_options.inter_op_num_threads = int(options["inter_op_threads"])
        level = LEVELS[(options.get("graph_optimization") or "all").lower()]
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
        self.io_binding = bool(self.providers[0] in DEVICE_MEMORY if io_binding is None else io_binding)

    def submit(self, batch: np.ndarray) -> _ORTPending:
        """Run ``batch`` on a worker thread (``run`` releases the GIL and is thread-safe)."""
        return _ORTPending(_executor().submit(self.infer, batch), self.timeout)

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


class _ORTPending(Pending):
    """A batch running on the session's thread pool; ``result`` waits at most the engine's timeout."""

    __slots__ = ("_future", "_timeout")

    def __init__(self, future: Any, timeout: float) -> None:
        self._future, self._timeout = future, timeout

    def result(self) -> list[np.ndarray]:
        from concurrent.futures import TimeoutError as FutureTimeout

        try:
            return self._future.result(timeout=self._timeout)
        except FutureTimeout:
            raise EngineTimeoutError(
                f"An ONNX Runtime run did not complete within {self._timeout:g} s (a hung device or provider?). "
                "Pass request_timeout=SECONDS if a batch really takes longer."
            ) from None
