"""``EngineModule``: the torch module Ultralytics' predictor and validator get instead of their AutoBackend.

It answers every attribute they read (format, stride, names, imgsz, dynamic, batch, kpt_shape, device, fp16,
legacy ``pt``/``jit`` flags...) and turns the engine's host arrays into CPU tensors in Ultralytics' layout,
so letterboxing, NMS, keypoints and masks stay in Ultralytics, on the CPU, whatever the engine.
"""

from __future__ import annotations

import contextvars
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from yolo_adapters.core.model_info import ModelInfo
from yolo_adapters.errors import ModelFormatError
from yolo_adapters.integration.shapes import ShapeBook, rect_letterbox_active

if TYPE_CHECKING:
    from yolo_adapters.backends.base import Engine

LOGGER = logging.getLogger(__name__)

# Format flags older Ultralytics (8.1-8.4.22) reads from AutoBackend; all False for a plugin engine (``pt`` is a
# property: see ``EngineModule.pt``).
_LEGACY_FLAGS = (
    "jit",
    "dnn",
    "onnx",
    "xml",
    "engine",
    "coreml",
    "saved_model",
    "pb",
    "tflite",
    "edgetpu",
    "tfjs",
    "paddle",
    "mnn",
    "ncnn",
    "imx",
    "rknn",
    "triton",
    "nn_module",
)


#: The stream pipeline advancing in this thread (yolo_adapters.integration.pipeline sets it): ``forward`` asks it for the
#: inference it started ahead for a batch. Held here so that this module needs nothing from the pipeline above it.
STREAM: contextvars.ContextVar[Any] = contextvars.ContextVar("yolo_adapters_stream", default=None)


class EngineModule(torch.nn.Module):
    """An engine dressed as Ultralytics' AutoBackend: what the patched ``AutoBackend`` returns."""

    def __init__(
        self,
        engine: Engine,
        info: ModelInfo,
        backend: str,
        device: str,
        artifact: Path,
        pipeline: bool = True,
    ) -> None:
        super().__init__()
        # Ultralytics 8.4 loads the next batch on a worker thread when its model says ``prefetch`` (what runs when
        # the patch layer is off); with it on, yolo_adapters.integration.pipeline reads the source ahead itself, and runs
        # pre-processing and inference ahead too, in order.
        self.prefetch = self.pipeline = bool(pipeline)
        for flag in _LEGACY_FLAGS:
            setattr(self, flag, False)
        self.engine = engine
        self.format = backend
        self.backend_name = backend
        self.engine_device = device
        self.artifact = Path(artifact)
        self.device = torch.device("cpu")  # pre/post-processing and NMS run on CPU tensors
        self.fp16 = False  # the predictor feeds float32; the engine casts if its input is FP16
        self.nhwc = False
        self.base_model = False  # augment / visualize / embed need the PyTorch model
        self.model = None
        self.info = info
        self.task = info.task
        self.names = dict(info.names)
        self.stride = info.stride
        self.kpt_shape = info.kpt_shape
        self.end2end = info.end2end
        self.channels = self.ch = info.channels
        self.metadata = info.metadata
        shape = engine.input_shape
        self._engine_dynamic = any(int(d) < 0 for d in shape[2:])  # any image size (a batch gear alone is not)
        #: A static model's engines per input shape (yolo_adapters.integration.shapes; set by ``serve_shapes``), None
        #: for a dynamic engine, a validator's model or an engine file given as is (one shape, the file's).
        self.shapes: ShapeBook | None = None
        self.last_shape: tuple[int, int] | None = None  # (h, w) of the last batch run
        self.batch = int(shape[0]) if int(shape[0]) > 0 else max(info.batch, 1)
        self.batch_size = self.batch
        if not self._engine_dynamic:
            self.imgsz = [int(shape[2]), int(shape[3])]
        self._layout_checked = False

    @property
    def dynamic(self) -> bool:
        """What Ultralytics reads to letterbox rect (8.4.23+): a dynamic engine, or a static one whose shape book
        admitted the batch being letterboxed now (``rect_letterbox``)."""
        return self._engine_dynamic or (self.shapes is not None and rect_letterbox_active())

    @property
    def pt(self) -> bool:
        """Ultralytics < 8.4.23 reads ``pt`` where it means "any input shape works" (rect letterbox, rect val
        batches). Not for classifiers: there ``pt`` makes the predictor take transforms from the PyTorch module
        this one replaces."""
        return self.dynamic and self.task != "classify"

    @property
    def ran_rect(self) -> bool:
        """Whether the last batch ran letterboxed as for PyTorch (rect) rather than padded to the square imgsz."""
        return self._engine_dynamic or (self.last_shape is not None and list(self.last_shape) != list(self.imgsz))

    @property
    def calls(self) -> int:
        """Batches run on this model's engines (every shape's): proof that the engine answered."""
        engines = self.shapes.engines.values() if self.shapes is not None else ()
        return int(self.engine.calls) + sum(int(e.calls) for e in engines if e is not self.engine)

    def serve_shapes(self, book: ShapeBook) -> None:
        """Run this static model at each source's rect shape, through ``book``'s engines (one per shape)."""
        self.shapes = book
        self.imgsz = list(book.square)

    def _engine_for(self, x: np.ndarray) -> Engine:
        shape = (int(x.shape[2]), int(x.shape[3]))
        self.last_shape = shape
        if self.shapes is None or self._engine_dynamic:
            return self.engine
        engine = self.shapes.engine(shape)
        return engine if engine is not None else self.engine

    def __deepcopy__(self, memo: dict) -> EngineModule:
        """The same module: an engine (compiled model, session) is shared, never copied. Ultralytics' validator
        deep-copies the model it is given before wrapping it (yolo_adapters.quantize hands it a built module)."""
        return self

    def __repr__(self) -> str:
        return f"EngineModule({self.backend_name}:{self.engine_device}, task={self.task}, artifact={self.artifact})"

    # -- what the predictor and validator call ------------------------------------------------------
    def forward(self, im: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor | list[torch.Tensor]:
        """Run the engine on a preprocessed NCHW batch; returns CPU tensors shaped as Ultralytics expects."""
        stream = STREAM.get()
        pending = stream.take(im) if stream is not None else None  # this batch was submitted ahead
        if pending is not None:
            return pending.result()
        x = self._numpy(im)
        engine = self._engine_for(x)
        static_batch = int(engine.input_shape[0])
        if static_batch > 0 and x.shape[0] != static_batch:
            return self._forward_static_batches(engine, x, static_batch)
        if x.shape[0] > 1 and engine.parallel > 1:
            return self.submit(im).result()
        return self._to_ultralytics(self._infer(engine, x))

    @staticmethod
    def _numpy(im: torch.Tensor) -> np.ndarray:
        x = im.detach().to("cpu")
        return x.numpy() if x.dtype == torch.float32 else x.float().numpy()

    def submit(self, im: torch.Tensor) -> _Submitted:
        """Start ``im`` on the engine without waiting; ``.result()`` gives what ``forward(im)`` gives.

        A dynamic batch of N > 1 is split over the engine's parallel requests (OpenVINO THROUGHPUT streams)."""
        x = self._numpy(im)
        engine = self._engine_for(x)
        static_batch = int(engine.input_shape[0])
        if static_batch > 0 and x.shape[0] != static_batch:
            return _Submitted(self, [], self._forward_static_batches(engine, x, static_batch))
        self._check_shape(engine, x)
        x = np.ascontiguousarray(x, dtype=engine.input_dtype)
        parts = min(x.shape[0], max(engine.parallel, 1)) if static_batch <= 0 else 1
        chunks = np.array_split(x, parts) if parts > 1 else [x]
        return _Submitted(self, [engine.submit(np.ascontiguousarray(c)) for c in chunks])

    def _check_shape(self, engine: Engine, x: np.ndarray) -> None:
        h, w = (int(d) for d in engine.input_shape[2:])
        if h < 0 or w < 0 or tuple(x.shape[2:]) == (h, w):
            return
        if self.shapes is not None:
            served = ", ".join(f"{a}x{b}" for a, b in self.shapes.shapes)
            raise ModelFormatError(
                f"The static {self.backend_name} model from {self.artifact} runs {served} images but got "
                f"{x.shape[2]}x{x.shape[3]}: pass imgsz={self.imgsz[0]} to predict (or dynamic=True when converting)."
            )
        raise ModelFormatError(
            f"The {self.backend_name} model at {self.artifact} takes {h}x{w} images but got "
            f"{x.shape[2]}x{x.shape[3]}: pass imgsz={h} (or dynamic=True when converting)."
        )

    def _infer(self, engine: Engine, x: np.ndarray) -> list[np.ndarray]:
        self._check_shape(engine, x)
        x = np.ascontiguousarray(x, dtype=engine.input_dtype)
        return engine.infer(x)

    def _forward_static_batches(self, engine: Engine, x: np.ndarray, size: int) -> torch.Tensor | list[torch.Tensor]:
        """A static-batch engine: pad short batches with zeros, split long ones, then drop the padding."""
        parts: list[list[np.ndarray]] = []
        for start in range(0, x.shape[0], size):
            chunk = x[start : start + size]
            real = chunk.shape[0]
            if real < size:
                chunk = np.concatenate([chunk, np.zeros((size - real, *chunk.shape[1:]), chunk.dtype)])
            parts.append([o[:real] for o in self._infer(engine, chunk)])
        return self._to_ultralytics([np.concatenate(outs) for outs in zip(*parts)])

    def _to_ultralytics(self, outputs: list[np.ndarray]) -> torch.Tensor | list[torch.Tensor]:
        tensors = [torch.from_numpy(np.ascontiguousarray(o)) for o in outputs]
        tensors = [t.float() if t.dtype == torch.float16 else t for t in tensors]  # NMS wants float32
        if len(tensors) == 2 and tensors[0].ndim == 4 and tensors[1].ndim == 3:
            tensors.reverse()  # segment: detections first, mask prototypes second
        if not self._layout_checked:  # the layout is the graph's: one look at the first batch is enough
            problem = self.info.layout_problem([tuple(t.shape) for t in tensors])
            if problem is not None:
                raise ModelFormatError(self._layout_error(problem, tensors))
            self._layout_checked = True
        return tensors[0] if len(tensors) == 1 else tensors

    def _layout_error(self, problem: str, tensors: list[torch.Tensor]) -> str:
        info = self.info
        found = ", ".join(f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}" for t in tensors)
        described = f"{len(self.names)} classes" + (f", keypoints {list(info.kpt_shape)}" if info.kpt_shape else "")
        head = f"{info.head} head" if info.head else "head"
        mode = ", exported end-to-end (NMS-free)" if info.end2end else ""
        return (
            f"{self.artifact} does not match its metadata: the {info.family} {self.task} model ({head}{mode}, "
            f"{described}) outputs {found}, but {problem}. Either the model file and its metadata come from "
            "different exports (export them together again from the .pt), or this head's layout is new to "
            "yolo_adapters: please report it with the line above."
        )

    def warmup(self, imgsz: tuple[int, ...] = (1, 3, 640, 640), im: torch.Tensor | None = None) -> None:
        """Nothing to warm: the engine was compiled when this module was built."""

    def fuse(self, *args: Any, **kwargs: Any) -> EngineModule:
        return self


class _Submitted:
    """Batches started on the engine; ``result()`` joins them (in input order) into Ultralytics' layout."""

    __slots__ = ("_module", "_pending", "_value")

    def __init__(self, module: EngineModule, pending: list, value: Any = None) -> None:
        self._module, self._pending, self._value = module, pending, value

    def result(self) -> torch.Tensor | list[torch.Tensor]:
        if self._value is None:
            outs, error = [], None
            for pending in self._pending:  # wait for every part, even after a failure: each holds a request
                try:
                    outs.append(pending.result())
                except BaseException as exc:
                    error = error or exc
            self._pending = []
            if error is not None:
                raise error
            merged = outs[0] if len(outs) == 1 else [np.concatenate(o) for o in zip(*outs)]
            self._value = self._module._to_ultralytics(merged)
        return self._value


class NPUOutputsOnHost(torch.nn.Module):
    """Ultralytics' own AutoBackend on torch_npu, with its outputs moved to the host.

    On Ascend cards torch_npu runs NMS and mask/keypoint post-processing slowly or not at all; the model still runs
    on the NPU, everything after it runs on CPU tensors, as on every yolo_adapters engine.
    """

    def __init__(self, backend: torch.nn.Module) -> None:
        super().__init__()
        self.backend = backend

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["backend"], name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return _to_host(self.backend(*args, **kwargs))


def _to_host(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_host(v) for v in value)
    return value
