"""The OpenVINO engine: one compiled model per process, an infer request per predictor, async requests for streams.

``core()`` is the process's one ``openvino.Core``; compiled models are shared by every predictor (and by the INT8
quantizer, which reads its FP32 IR through the same Core).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from yolo_adapters.backends.base import Engine, Pending
from yolo_adapters.core.cache import resolve_root
from yolo_adapters.core.logs import warn_once
from yolo_adapters.errors import DeviceError, EngineTimeoutError, ModelFormatError

LOGGER = logging.getLogger(__name__)
_core_lock = threading.Lock()
_core: Any = None
_compiled: dict[tuple, Any] = {}  # compiled models shared by every predictor in the process


def core() -> Any:
    """One ``openvino.Core`` per process (its device plugins are expensive to load)."""
    global _core
    with _core_lock:
        if _core is None:
            import openvino as ov

            _core = ov.Core()
        return _core


def bf16_supported(device: str) -> bool:
    """Whether ``device`` computes in bf16 natively: OpenVINO lists BF16 in its OPTIMIZATION_CAPABILITIES (CPUs
    with AMX or AVX512-BF16). Tests replace this function to take the "has bf16" path on any host."""
    try:
        return "BF16" in core().get_property(device, "OPTIMIZATION_CAPABILITIES")
    except Exception:  # a virtual device (AUTO, MULTI...) or a plugin that cannot answer
        return False


def inference_precision_bf16(device: str) -> str:
    """precision="bf16": ``bf16`` where the device has it; elsewhere ``f32``, said once per device in one line.

    FP32 rather than an error, so that one script runs on every host; without native support OpenVINO's CPU
    plugin would itself ignore the bf16 hint and run f32 (2026.4, AVX2 host), silently."""
    if bf16_supported(device):
        return "bf16"
    warn_once(
        LOGGER,
        f"bf16 {device}",
        "precision='bf16' but OpenVINO's %s has no native bf16 (no AMX or AVX512-BF16): running FP32.",
        device,
    )
    return "f32"


class OpenVINOEngine(Engine):
    """One compiled model (shared per process) and this predictor's own infer request."""

    precision = "fp32"  # the precision asked for (fp32, fp16, int8, bf16); for precision="auto", the one chosen

    def __init__(self, artifact: Path, device: str, options: Mapping[str, Any]) -> None:
        super().__init__()
        config = {"PERFORMANCE_HINT": str(options.get("hint") or "latency").upper()}
        precision = options.get("precision") or "fp32"
        if precision == "auto":  # what the conversion chose (precision_choice.json beside the IR)
            from yolo_adapters.quantize.choice import chosen_precision

            precision = chosen_precision(artifact, ("fp32", "bf16", "int8"))
        self.precision = precision
        if precision in ("fp32", "int8"):
            # CPUs with AMX/AVX512-BF16 default to bf16 inference, which moves scores by ~1e-2: fp32 means fp32.
            # INT8 too: its int8 layers stay int8, and the float-kept head must not drop to bf16 (2-4 px at 640).
            config["INFERENCE_PRECISION_HINT"] = "f32"
        elif precision == "bf16":
            config["INFERENCE_PRECISION_HINT"] = inference_precision_bf16(device)
        compile_cache = options.get("compile_cache", True)
        if compile_cache:
            folder = Path(compile_cache) if isinstance(compile_cache, (str, Path)) else None
            folder = folder or resolve_root(options.get("cache_dir")) / "openvino_compiled"
            config["CACHE_DIR"] = str(folder)
        config.update({str(k): v for k, v in (options.get("config") or {}).items()})
        key = (
            str(Path(artifact).resolve()),
            device,
            tuple(sorted((k, str(v)) for k, v in config.items())),
            options.get("dynamic"),
            tuple(options.get("imgsz") or ()) if not isinstance(options.get("imgsz"), int) else options.get("imgsz"),
            options.get("batch"),
        )
        with _core_lock:
            compiled = _compiled.get(key)
        if compiled is None:
            compiled = _compile(artifact, device, config, options)
            with _core_lock:
                compiled = _compiled.setdefault(key, compiled)
        self._adopt(compiled)

    @classmethod
    def from_compiled(cls, compiled: Any) -> OpenVINOEngine:
        """An engine over a model someone else compiled (NNCF's accuracy control hands its candidates so)."""
        engine = cls.__new__(cls)
        Engine.__init__(engine)
        engine._adopt(compiled)
        return engine

    def _adopt(self, compiled: Any) -> None:
        self.compiled = compiled
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()
        self._outputs = len(compiled.outputs)
        shape = compiled.input(0).get_partial_shape()
        self.input_shape = tuple(int(d.get_length()) if d.is_static else -1 for d in shape)
        self.input_dtype = np.dtype(compiled.input(0).get_element_type().to_dtype())
        try:  # THROUGHPUT: one request per CPU stream (2 on 2 cores); LATENCY: 1
            self.parallel = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        except Exception:
            self.parallel = 1
        self._idle: queue.SimpleQueue | None = None  # asynchronous requests, made on the first submit

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            self._count()
            self._request.infer({0: batch})
            return [self._request.get_output_tensor(i).data.copy() for i in range(self._outputs)]

    def submit(self, batch: np.ndarray) -> _OVPending:
        """Start ``batch`` on an idle request (waits while ``parallel + 1`` are busy) and return at once."""
        with self._lock:
            if self._idle is None:
                self._idle = queue.SimpleQueue()
                for _ in range(self.parallel + 1):  # one more than the engine runs: the next batch waits queued
                    self._idle.put(self.compiled.create_infer_request())
        idle = self._idle
        try:
            request = idle.get(timeout=self.timeout)
        except queue.Empty:
            raise EngineTimeoutError(
                f"No OpenVINO infer request came free within {self.timeout:g} s: the started ones never completed "
                "(a hung device or driver?). Pass request_timeout=SECONDS if a batch really takes longer."
            ) from None
        self._count()
        try:
            # Copied into the request's own input tensor, never shared: shared inputs corrupted the heap on long
            # streams (docs/openvino.md).
            request.start_async({0: batch})
        except BaseException:
            idle.put(request)
            raise
        return _OVPending(self, request)


class _OVPending(Pending):
    __slots__ = ("_engine", "_outputs", "_request")

    def __init__(self, engine: OpenVINOEngine, request: Any) -> None:
        self._engine, self._request = engine, request
        self._outputs: list[np.ndarray] | None = None

    def result(self) -> list[np.ndarray]:
        if self._outputs is None:
            request, self._request = self._request, None
            try:
                if not request.wait_for(int(self._engine.timeout * 1000)):
                    request.cancel()  # returned to the pool below, usable again
                    raise EngineTimeoutError(
                        f"An OpenVINO infer request did not complete within {self._engine.timeout:g} s (a hung device "
                        "or driver?). Pass request_timeout=SECONDS if a batch really takes longer."
                    )
                self._outputs = [request.get_output_tensor(i).data.copy() for i in range(self._engine._outputs)]
            finally:
                idle = self._engine._idle
                assert idle is not None  # made by the submit that started this request
                idle.put(request)
        return self._outputs


def _compile(artifact: Path, device: str, config: dict, options: Mapping[str, Any]) -> Any:
    ov_core = core()
    try:
        model = ov_core.read_model(str(artifact))
    except Exception as exc:
        raise ModelFormatError(
            f"OpenVINO cannot read {artifact} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}). "
            "The file is corrupt or incomplete (an .xml needs its .bin beside it): re-export it, or pass the .pt."
        ) from exc
    partial = model.input(0).get_partial_shape()
    if options.get("dynamic") is False and partial.is_dynamic:  # static serving shape, as GPU/NPU prefer
        imgsz = options.get("imgsz") or 640
        h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
        model.reshape({model.input(0).get_any_name(): [int(options.get("batch") or 1), 3, int(h), int(w)]})
    try:
        return ov_core.compile_model(model, device, config)
    except Exception as exc:
        raise DeviceError(f"OpenVINO could not compile {artifact} for {device}: {exc}") from exc
