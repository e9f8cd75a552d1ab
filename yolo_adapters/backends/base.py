"""What a backend plugin is: an engine loader with a device grammar and its own options.

Three words, three things: a *plugin* (``BackendPlugin``) knows an engine's devices, options and conversion; an
*engine* (``Engine``) is one loaded model that runs batches; the *engine module* (``yolo_adapters.integration.module``) is the
torch module Ultralytics gets in place of its AutoBackend. A plugin is registered under the entry-point group
``yolo_adapters.backends``; the built-in ones are registered the same way a third-party package would register its
own (see docs/plugins.md). Everything engine-independent (conversion, caching, the engine module, output layout)
lives once in the layers above (``yolo_adapters.integration.runtime``, ``convert``, ``module``); a plugin only answers the
questions below, and nothing here imports an engine package.
"""

from __future__ import annotations

import collections
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from yolo_adapters.core.model_info import ModelInfo, read_artifact_info
from yolo_adapters.errors import OptionError

#: Options every backend understands; the runtime acts on them, not the engine.
COMMON_OPTIONS: dict[str, tuple[type, ...]] = {
    "device": (str,),
    "imgsz": (int, list, tuple),
    "batch": (int,),
    "dynamic": (bool, type(None)),
    "precision": (str,),
    "cache_dir": (str, Path, type(None)),
    "pipeline": (bool,),  # overlap loading, pre-processing, inference and post-processing on video/folder sources
    "request_timeout": (int, float),  # seconds an asynchronous inference may take before it is an error
    # Static models (yolo_adapters.integration.shapes): each source's rect shape, not one square
    "rect": (bool,),  # False: every frame letterboxed to the square imgsz, as Ultralytics' own static exports
    "shapes": (list, tuple, type(None)),  # pinned (height, width) shapes: the only ones built, no conversion beyond
    "max_shapes": (int,),  # rect shapes a predictor may add at run time besides the square (default: shape_budget)
}
#: Options of precision="int8" (docs/quantization.md); every plugin listing "int8" or "auto" in ``precisions``
#: accepts them (``BackendPlugin.precision_option_types``).
QUANT_OPTIONS: dict[str, tuple[type, ...]] = {
    "calibration": (str, Path, type(None)),  # folder of images (searched recursively), or a YOLO data.yaml
    "calibration_size": (int,),  # at most this many calibration images (default 300, NNCF's default)
    "holdout": (int, type(None)),  # images kept back for the report (default: 20% of the folder, 1..50)
    "fast_bias_correction": (bool,),  # NNCF's fast bias correction: about 2x quicker calibration, less accurate
    "max_drop": (float, int, type(None)),  # accuracy-controlled NNCF quantization: largest metric drop allowed
    "max_keypoint_px": (float, int, type(None)),  # accuracy control on agreement with FP32 (pose, no labels needed)
}
#: precision="auto" adds the bounds on agreement with FP32 (``yolo_adapters.quantize.choice``).
AUTO_OPTIONS: dict[str, tuple[type, ...]] = {"tolerance": (dict, type(None))}
#: The precisions whose conversion is ``yolo_adapters.quantize``'s (calibrated on the user's images).
CALIBRATED_PRECISIONS = ("int8", "auto")
#: Default ``request_timeout``: far above any one batch of a YOLO model on a working device, so it only ends hangs.
DEFAULT_REQUEST_TIMEOUT = 300.0


@dataclass(frozen=True)
class ExportPlan:
    """How to turn a PyTorch model into this backend's artifact through Ultralytics' exporter."""

    format: str  # Ultralytics export format: "openvino", "onnx"
    imgsz: tuple[int, int]
    batch: int
    dynamic: bool
    precision: str  # "fp32" | "fp16" | "int8"
    extra: tuple[tuple[str, Any], ...] = ()  # further exporter arguments (opset...), part of the cache key
    # Local inputs of the conversion that must not enter the cache key (the calibration folder's path: its
    # content hash is in ``extra``). Left out of repr, which is what the key hashes.
    inputs: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)


class Engine(ABC):
    """A loaded model ready to run: NCHW numpy in, the model's raw outputs out (in model order).

    Engines are called from several predictor threads at once; each engine serialises what its
    runtime cannot run concurrently.
    """

    #: Static input shape (N, C, H, W); -1 where the dimension is dynamic.
    input_shape: tuple[int, ...]
    #: dtype the engine wants its input in (float32, or float16 for FP16 models).
    input_dtype: np.dtype = np.dtype(np.float32)
    #: Number of inferences run so far: tests and `check` use it to prove the engine really ran.
    calls: int = 0
    #: Seconds a started batch may take (option ``request_timeout``): past it, ``Pending.result`` raises
    #: EngineTimeoutError instead of waiting forever on a hung device.
    timeout: float = DEFAULT_REQUEST_TIMEOUT

    def __init__(self) -> None:
        self._calls_lock = threading.Lock()
        self.calls = 0

    def _count(self) -> None:
        with self._calls_lock:
            self.calls += 1

    @property
    def dynamic(self) -> bool:
        return any(int(d) < 0 for d in self.input_shape)

    @abstractmethod
    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run one batch; return one host array per model output."""

    #: How many batches the engine runs at once to its advantage (parallel infer requests, streams); 1 = one.
    #: The stream pipeline keeps ``parallel + 1`` batches in flight; ``batch=N`` is split over ``parallel`` requests.
    parallel: int = 1

    def submit(self, batch: np.ndarray) -> Pending:
        """Start one batch and return at once where the engine can; ``.result()`` returns what ``infer`` returns.

        The default runs ``infer`` now (engines without an asynchronous API, such as ais_bench): the stream
        pipeline still overlaps loading, pre- and post-processing with it."""
        return Done(self.infer(batch))

    def close(self) -> None:
        """Release engine resources (devices, sessions)."""


#: ``timed(batches, warmup)``: inference only, ``batches`` fed as fast as the engine takes them after ``warmup``;
#: returns at least ``{"frames": N, "fps": batches per second}``.
TimingSession = Callable[[Iterable[np.ndarray], np.ndarray], dict]


def engine_throughput(engine: Engine, batches: Iterable[np.ndarray], warmup: np.ndarray) -> dict[str, Any]:
    """Batches per second of ``engine`` over ``batches`` with ``engine.parallel + 1`` in flight, after one warm-up
    batch per request: what any engine's asynchronous ``submit`` sustains, the pre-processing already done."""
    in_flight = engine.parallel + 1
    for pending in [engine.submit(warmup) for _ in range(in_flight)]:
        pending.result()
    queue: collections.deque[Pending] = collections.deque()
    count = 0
    start = time.perf_counter()
    for batch in batches:
        if len(queue) >= in_flight:
            queue.popleft().result()
        queue.append(engine.submit(batch))
        count += 1
    while queue:
        queue.popleft().result()
    total = time.perf_counter() - start
    return {"frames": count, "fps": count / total if total > 0 else 0.0, "requests": in_flight}


class Pending:
    """A batch started with ``Engine.submit``: ``result()`` waits for its outputs (call it once)."""

    def result(self) -> list[np.ndarray]:
        raise NotImplementedError


class Done(Pending):
    """Outputs computed already."""

    __slots__ = ("_outputs",)

    def __init__(self, outputs: list[np.ndarray]) -> None:
        self._outputs = outputs

    def result(self) -> list[np.ndarray]:
        return self._outputs


class BackendPlugin(ABC):
    """An inference engine plugin."""

    #: Name used in activate("name"), YOLO_ADAPTERS=name and the device string "name:DEVICE".
    name: ClassVar[str]
    #: Other prefixes of Ultralytics device strings this backend claims ("intel" for OpenVINO).
    device_aliases: ClassVar[tuple[str, ...]] = ()
    #: pip extra that installs the engine: shown in the "not installed" message.
    extra: ClassVar[str] = ""
    #: Engine device used when none is given.
    default_device: ClassVar[str] = "cpu"
    #: Backend-specific option names and the types they accept.
    option_types: ClassVar[dict[str, tuple[type, ...]]] = {}

    # -- availability ---------------------------------------------------------------------------
    @abstractmethod
    def missing_requirements(self) -> str | None:
        """None when the engine can run here, else a sentence saying what is missing and how to get it."""

    def claims_device(self, prefix: str) -> bool:
        """Whether this backend takes device strings starting with ``prefix`` (lower case)."""
        return prefix == self.name or prefix in self.device_aliases

    def normalize_device(self, prefix: str, spec: str) -> str:
        """Turn the part after ``prefix:`` into the engine's device name (validated at load time)."""
        return spec or self.default_device

    def check_device(self, device: str) -> None:
        """Raise DeviceError (listing what exists) before any conversion work when ``device`` is not here."""

    def available_devices(self) -> list[str]:
        """Devices the engine sees here (for messages and `yolo-adapters info`)."""
        return []

    def environment(self) -> dict[str, Any]:
        """Engine-specific facts for `yolo-adapters info` (device names, tools found on PATH...), JSON-serialisable.

        Called even when ``missing_requirements()`` is not None (so it can say which tool is missing): it must
        not assume the engine package imports."""
        return {}

    # -- options ----------------------------------------------------------------------------------
    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Reject unknown option names and wrong types early, with the list of valid ones."""
        allowed = {**COMMON_OPTIONS, **self.precision_option_types(), **self.option_types}
        for key, value in options.items():
            if key not in allowed:
                raise OptionError(
                    f"Unknown option {key!r} for backend {self.name!r}; valid options: {', '.join(sorted(allowed))}."
                )
            types = allowed[key]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                names = " or ".join(sorted({"None" if t is type(None) else t.__name__ for t in types}))
                raise OptionError(
                    f"Option {key!r} for backend {self.name!r} must be {names}, got {type(value).__name__} {value!r}."
                )
        precision = options.get("precision")
        if precision is not None and precision not in self.precisions:
            raise OptionError(
                f"precision={precision!r} is not supported by {self.name!r}; use one of {self.precisions}."
            )
        self.check_precision_options(options)
        return dict(options)

    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16")

    # -- models -------------------------------------------------------------------------------------
    #: File suffixes the engine runs as they are; a model folder is searched for the first one.
    artifact_suffixes: ClassVar[tuple[str, ...]] = ()

    def find_artifact(self, path: Path) -> Path | None:
        """The runnable file inside ``path`` if the user gave this engine's own format, else None."""
        if not self.artifact_suffixes:
            return None
        if path.is_dir():
            pattern = f"*{self.artifact_suffixes[0]}"
            found = sorted(path.glob(pattern)) or sorted(path.rglob(pattern))
            return found[0] if found else None
        return path if path.suffix in self.artifact_suffixes else None

    @abstractmethod
    def export_plan(self, device: str, options: Mapping[str, Any], imgsz: Sequence[int], batch: int) -> ExportPlan:
        """How a .pt model must be exported for ``device`` and ``options``."""

    @staticmethod
    def make_plan(
        fmt: str,
        options: Mapping[str, Any],
        imgsz: Sequence[int],
        batch: int,
        *,
        cpu: bool,
        extra: tuple[tuple[str, Any], ...] = (),
    ) -> ExportPlan:
        """The plan every backend builds: dynamic shapes by default on a CPU (any shape runs at full speed),
        one static serving shape elsewhere (GPUs, NPUs and graph compilers want it); ``dynamic`` overrides."""
        dynamic = options.get("dynamic")
        if dynamic is None:
            dynamic = cpu
        return ExportPlan(
            format=fmt,
            imgsz=(int(imgsz[0]), int(imgsz[1])),
            batch=1 if dynamic else int(batch),
            dynamic=bool(dynamic),
            precision=options.get("precision") or "fp32",
            extra=extra,
        )

    def engine_version(self) -> str:
        """Version of the engine package; part of the conversion cache key."""
        return ""

    def fallback_plan(self, plan: ExportPlan) -> ExportPlan | None:
        """Another Ultralytics export that ``finish_artifact`` can turn into this engine's artifact, tried when
        Ultralytics' own exporter cannot produce ``plan.format`` with the installed engine (Ultralytics 8.1-8.3 with
        OpenVINO 2026, whose ``openvino.runtime`` they import, is gone). None: there is no other route."""
        return None

    def finish_artifact(self, exported: Path, plan: ExportPlan) -> Path:
        """Post-process what Ultralytics exported (e.g. run a compiler); returns the runnable artifact. The default
        finds the artifact and completes INT8 and precision="auto" (``finish_precision``)."""
        return self.finish_precision(self.find_artifact(exported) or exported, plan)

    def artifact_info(self, artifact: Path, options: Mapping[str, Any]) -> ModelInfo:
        """Ultralytics metadata (a ModelInfo) for ``artifact``; a backend may fill gaps from its options."""
        return read_artifact_info(artifact)

    @abstractmethod
    def load(self, artifact: Path, device: str, options: Mapping[str, Any]) -> Engine:
        """Compile/open ``artifact`` on ``device``."""

    def shape_budget(self, device: str, options: Mapping[str, Any]) -> int:
        """How many rect shapes besides the square one a static model may add at run time on ``device``
        (yolo_adapters.integration.shapes): each is a conversion at that shape, cached. 0 keeps static models
        square. The option ``max_shapes`` overrides it."""
        return 4

    def shape_min_frames(self, device: str, options: Mapping[str, Any]) -> int:
        """Frames of one size a source of mixed sizes (files, a folder, one image per call) must bring before that
        size's rect shape is converted: about the frames whose saving pays for the conversion, so that photos of
        odd sizes stay on the square engine. The default is OpenVINO's on a 2-core CPU (docs/static-shapes.md)."""
        return 64

    # -- precision: INT8 and precision="auto", written once in yolo_adapters.quantize against these hooks -------
    # A plugin listing "int8" or "auto" in ``precisions`` mixes in ``yolo_adapters.quantize.PrecisionFlows`` before
    # this class (it implements ``check_precision_options``, ``precision_plan`` and ``finish_precision``, and
    # ``run_precision`` for ``load``), ends ``export_plan`` with ``return self.precision_plan(plan, options, device)``
    # and implements ``quantizer_version`` and ``quantize`` (and, for "auto", whichever of the candidate hooks its
    # engine needs). docs/plugins.md lists them.

    #: Whether INT8 conversion supports accuracy control (``max_drop``): NNCF does, ONNX Runtime's quantizer does not.
    accuracy_control: ClassVar[bool] = False
    #: What precision="auto" may choose among, the reference first (the error without calibration data names them).
    auto_candidates: ClassVar[tuple[str, ...]] = ("fp32", "int8")
    #: How ``timing_session`` measures, as the precision="auto" choice record says it (``timing`` section).
    timing_record: ClassVar[dict[str, str]] = {
        "fps": "images/s of the engine, parallel + 1 batches in flight through submit, inference only, best round"
    }

    def precision_option_types(self) -> dict[str, tuple[type, ...]]:
        """The INT8 options (and ``tolerance`` for "auto") where ``precisions`` lists them: one table for all."""
        found: dict[str, tuple[type, ...]] = {}
        if set(CALIBRATED_PRECISIONS) & set(self.precisions):
            found.update(QUANT_OPTIONS)
        if "auto" in self.precisions:
            found.update(AUTO_OPTIONS)
        return found

    def quantizer_version(self) -> str:
        """Name and version of the INT8 quantizer (part of the cache key); a clear error when it is not installed.

        Only called for plugins that list "int8" in ``precisions``."""
        raise NotImplementedError(f"The {self.name!r} backend has no INT8 quantizer.")

    def check_precision_options(self, checked: Mapping[str, Any]) -> None:
        """Reject, before any export, INT8/auto options that cannot work (``tolerance`` without precision="auto")."""

    def precision_facts(self, precision: str, device: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """What an INT8 (``precision="int8"``) or ``precision="auto"`` conversion for ``device`` depends on besides
        the calibration data (the CPU's instruction set, the execution provider...): it enters the cache key, so a
        host that would convert otherwise converts again, and the choice record. JSON-serialisable values."""
        return {}

    def precision_plan(self, plan: ExportPlan, options: Mapping[str, Any], device: str) -> ExportPlan:
        """``plan`` completed for its precision: the last step of ``export_plan``. Only "int8" and "auto" change it
        (``yolo_adapters.quantize.PrecisionFlows``); a plugin without them keeps its plan."""
        if plan.precision in CALIBRATED_PRECISIONS:
            raise NotImplementedError(
                f"The {self.name!r} backend lists precision={plan.precision!r} but does not mix in "
                "yolo_adapters.quantize.PrecisionFlows."
            )
        return plan

    def finish_precision(self, artifact: Path, plan: ExportPlan) -> Path:
        """The runnable ``artifact`` turned into ``plan.precision`` where that is a calibrated precision (INT8,
        "auto": ``yolo_adapters.quantize.PrecisionFlows``); unchanged otherwise."""
        return artifact

    def quantize(self, artifact: Path, plan: ExportPlan, keep_fp32: bool = False) -> Path:
        """INT8 of the FP32 ``artifact`` beside it, with ``quantization_report.json``; the FP32 one removed unless
        ``keep_fp32``. Written with ``yolo_adapters.quantize.int8.Quantizer``, whose ``run`` is the shared flow."""
        raise NotImplementedError(f"The {self.name!r} backend has no INT8 quantizer.")

    def input_shape(self, artifact: Path) -> tuple[int, ...]:
        """The input shape ``artifact`` declares, -1 where dynamic (``yolo_adapters.quantize.static_shape`` sets
        those from the plan). The default opens the engine; a plugin that can read the file alone overrides it."""
        return tuple(self.load(artifact, self.default_device, {}).input_shape)

    def precision_candidates(self, device: str) -> list[str]:
        """What precision="auto" builds and times on ``device``: ``auto_candidates`` unless the device lacks one."""
        return list(self.auto_candidates)

    def build_candidate(self, name: str, fp32_artifact: Path, plan: ExportPlan) -> Path:
        """The artifact of candidate ``name`` (not "fp32" nor "int8", which is ``quantize``): by default the FP32
        artifact itself, which ``load``/``timing_session`` run at ``{"precision": name}`` (OpenVINO's bf16). A
        converted copy goes beside it (ONNX Runtime's fp16); a ConversionError leaves the candidate out."""
        return fp32_artifact

    # -- timing: precision="auto" compares candidates by it, ``bench`` reports it as the inference-only limit ----
    def timing_session(self, artifact: Path, device: str, options: Mapping[str, Any]) -> TimingSession:
        """``artifact`` opened once for the most images per second, to be timed several times (``precision="auto"``
        alternates rounds between its candidates). The default loads the engine as ``load`` does and keeps
        ``parallel + 1`` batches in flight through ``submit``; an engine with a faster native queue overrides it."""
        engine = self.load(artifact, device, options)

        def timed(batches: Iterable[np.ndarray], warmup: np.ndarray) -> dict[str, Any]:
            return engine_throughput(engine, batches, warmup)

        return timed

    # -- Ray actors: yolo_adapters.ray asks these; defaults fit an engine without accelerator or thread settings ------
    def accelerator_request(self, device: str, cluster: Mapping[str, float]) -> tuple[float | None, dict[str, float]]:
        """The (num_gpus, resources) one Ray actor running ``device`` asks for when the caller gave neither, so that
        each actor owns its card; ``cluster`` is ``ray.cluster_resources()``. Default: nothing (a CPU engine)."""
        return None, {}

    def accelerator_device(self, device: str, assigned: Mapping[str, Sequence[Any]], env: Mapping[str, str]) -> str:
        """The device an actor opens given the accelerator ids Ray ``assigned`` it (``get_accelerator_ids()``) and
        its environment (Ray hides other cards through ``*_VISIBLE_DEVICES``). Default: ``device`` as given."""
        return device

    def thread_options(self, options: Mapping[str, Any], threads: int) -> dict[str, Any]:
        """``options`` with the engine's intra-op thread count set to ``threads`` unless the user set it: an actor
        holding N Ray CPUs runs N engine threads. Default: the engine has no such option, ``options`` as they are."""
        return dict(options)

    # -- bench: the rows `yolo-adapters bench` times for this engine ---------------------------------------------
    #: Ultralytics export format whose own runtime path (``YOLO("model.onnx")``) ``bench`` times beside this
    #: engine; None where Ultralytics runs no such export itself.
    native_format: ClassVar[str | None] = None

    def bench_rows(self, calibration: Path) -> dict[str, dict[str, Any]]:
        """Rows of ``yolo-adapters bench``: label -> options of ``activate(self.name, **options)``, each timed as a
        stream predict; the first also times single images. ``calibration``: images for an INT8 row. Rows this
        host cannot run are left out. Default: one row with the engine's defaults."""
        return {f"yolo_adapters {self.name}": {}}

    def bench_native_rows(self) -> dict[str, Callable[[], Callable[[], None]]]:
        """Rows timing Ultralytics' own path on its ``native_format`` export: label -> a setup run before the model
        is loaded that returns its undo (e.g. a patch so that Ultralytics compiles in FP32). The first is the
        "vs native" reference. Default: one row, nothing to set up."""
        if self.native_format is None:
            return {}
        return {f"Ultralytics native {self.native_format}": lambda: lambda: None}

    def bench_limits(self) -> dict[str, dict[str, Any]]:
        """Inference-only limits ``bench`` measures through ``timing_session`` on the model a row ran (a native
        row's: Ultralytics' export): row label -> ``{"label": limit label, "options": timing options}``, plus
        ``"decode": label`` on the one also fed by decoding each frame (the decode-inclusive bound). The first
        limit of a dynamic row is what the other dynamic rows are compared with; a native row's, the static
        ones. Empty (the default): the first bench row's model, with its options."""
        return {}

    def bare_infer(self, engine: Engine) -> Callable[[np.ndarray], Any]:
        """The cheapest call that runs ``engine`` on one batch, which ``bench`` compares ``EngineModule.forward``
        with to show the adapter's per-call overhead. Default: ``engine.infer``."""
        return engine.infer

    def bench_notes(self, fps: Mapping[str, float]) -> list[str]:
        """Sentences ``bench`` adds under its table for this engine's rows (``fps``: median FPS by row label)."""
        return []

    def machine_facts(self) -> dict[str, str]:
        """What ``bench``'s machine line says about this engine here: name -> value (its version, a native data
        type). Called only when ``missing_requirements()`` is None."""
        version = self.engine_version()
        return {self.name: version} if version else {}
