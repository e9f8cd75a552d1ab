"""The OpenVINO plugin: device names, options, conversion plan (FP32/FP16 IR, INT8 through NNCF)."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from yolo_adapters.backends.base import BackendPlugin, Engine, ExportPlan, TimingSession
from yolo_adapters.backends.openvino import engine
from yolo_adapters.backends.openvino.engine import OpenVINOEngine, core
from yolo_adapters.backends.openvino.onnx_to_ir import onnx_to_ir
from yolo_adapters.errors import BackendUnavailableError, ConversionError, DeviceError, OptionError
from yolo_adapters.quantize import PrecisionFlows

LOGGER = logging.getLogger(__name__)
_VIRTUAL = ("AUTO", "MULTI", "HETERO", "BATCH")
_HINTS = ("latency", "throughput", "cumulative_throughput")


class OpenVINOPlugin(PrecisionFlows, BackendPlugin):
    name = "openvino"
    device_aliases = ("intel", "ov")
    extra = "openvino"
    default_device = "CPU"
    artifact_suffixes = (".xml", ".onnx")  # OpenVINO reads ONNX directly
    option_types: ClassVar[dict[str, tuple[type, ...]]] = {
        "hint": (str,),
        "config": (dict,),
        "compile_cache": (bool, str, Path),
    }  # and precision="int8"/"auto"'s (BackendPlugin.precision_option_types)
    # bf16: the FP32 IR (one cache entry with fp32), compiled with INFERENCE_PRECISION_HINT=bf16 (engine.py);
    # auto: FP32, BF16 and INT8 measured on the calibration images, the fastest that agrees with FP32 kept
    # (yolo_adapters.quantize.auto, through the precision hooks below)
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
        return self.precision_plan(plan, options, device)  # int8, auto: FP32 export, converted in finish_artifact

    def fallback_plan(self, plan: ExportPlan) -> ExportPlan | None:
        """Ultralytics' ONNX export, converted with ``openvino.convert_model`` in ``finish_artifact``: for releases
        whose OpenVINO exporter needs an older OpenVINO (8.1-8.3 import ``openvino.runtime``, gone in 2026).
        Unsimplified (``simplify=False``): OpenVINO's converter folds the graph itself, and 8.3's simplify would
        pip-install a pinned onnxslim and onnxruntime mid-export. It needs the onnx package, which the
        ``[openvino]`` extra installs; without it the error names the package instead of Ultralytics trying to
        install it."""
        if importlib.util.find_spec("onnx") is None:
            raise ConversionError(
                "This Ultralytics release exports OpenVINO through ONNX with the installed OpenVINO, and the onnx "
                "package is missing: pip install onnx (or pip install 'yolo-adapters[openvino]', which includes it)."
            )
        extra = (*(kv for kv in plan.extra if kv[0] != "simplify"), ("simplify", False))
        return dataclasses.replace(plan, format="onnx", precision="fp32", extra=extra)  # FP16 weights: onnx_to_ir

    def finish_artifact(self, exported: Path, plan: ExportPlan) -> Path:
        if exported.suffix == ".onnx":  # the fallback route: make the IR Ultralytics' own export would have made
            exported = onnx_to_ir(exported, plan)
        return super().finish_artifact(exported, plan)  # and INT8 or precision="auto" (finish_precision)

    # -- precision: the hooks yolo_adapters.quantize's INT8 and precision="auto" flows call ----------------------
    auto_candidates = ("fp32", "bf16", "int8")
    timing_record: ClassVar[dict[str, str]] = {
        "hint": "THROUGHPUT",
        "fps": "images/s of the compiled model, inference only, best round",
    }

    def precision_facts(self, precision: str, device: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """The INT8 target (device family, CPU ISA level, NNCF recipe: VNNI or not), and for "auto" whether the
        device computes bf16 natively: another CPU may quantize or choose otherwise."""
        from yolo_adapters.backends.openvino.int8 import int8_target

        facts: dict[str, Any] = dict(int8_target(device))
        if precision == "auto":
            facts["bf16"] = engine.bf16_supported(facts["device"])
        return facts

    def quantize(self, artifact: Path, plan: ExportPlan, keep_fp32: bool = False) -> Path:
        from yolo_adapters.backends.openvino.int8 import NNCFQuantizer  # NNCF only when something is quantized

        return NNCFQuantizer().run(artifact, plan, self, keep_fp32)

    def input_shape(self, artifact: Path) -> tuple[int, ...]:
        partial = core().read_model(str(artifact)).input(0).get_partial_shape()
        return tuple(int(d.get_length()) if d.is_static else -1 for d in partial)

    def precision_candidates(self, device: str) -> list[str]:
        """FP32, BF16 where the device computes it natively (AMX or AVX512-BF16 CPUs), INT8 (NNCF)."""
        return [p for p in self.auto_candidates if p != "bf16" or engine.bf16_supported(device)]

    def timing_session(self, artifact: Path, device: str, options: Mapping[str, Any]) -> TimingSession:
        """The IR compiled once with the THROUGHPUT hint (or ``hint``) at ``precision`` (bf16 compiles bf16,
        everything else f32), timed through an AsyncInferQueue (``timing.throughput``)."""
        from yolo_adapters.backends.openvino.timing import compile_for_throughput, throughput

        precision = "bf16" if options.get("precision") == "bf16" else "f32"
        hint = str(options.get("hint") or "throughput").upper()
        compiled = compile_for_throughput(artifact, hint=hint, precision=precision, device=device)

        def timed(batches: Iterable[np.ndarray], warmup: np.ndarray) -> dict[str, Any]:
            return throughput(compiled, batches, warmup)

        return timed

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

    # -- Ray actors --------------------------------------------------------------------------------------
    def thread_options(self, options: Mapping[str, Any], threads: int) -> dict[str, Any]:
        """OpenVINO's ``INFERENCE_NUM_THREADS`` in ``config``, unless the user's config sets it."""
        out = dict(options)
        config = dict(out.get("config") or {})
        config.setdefault("INFERENCE_NUM_THREADS", int(threads))
        out["config"] = config
        return out

    # -- bench -------------------------------------------------------------------------------------------
    native_format = "openvino"
    BENCH_THROUGHPUT: ClassVar[str] = "yolo_adapters openvino throughput"
    BENCH_INT8: ClassVar[str] = "yolo_adapters openvino throughput, INT8"
    BENCH_BF16: ClassVar[str] = "yolo_adapters openvino throughput, BF16"
    BENCH_NATIVE_FP32: ClassVar[str] = "Ultralytics native OpenVINO (FP32)"
    BENCH_NATIVE_AS_SHIPPED: ClassVar[str] = "Ultralytics native OpenVINO, as shipped (bf16 on AMX CPUs)"
    LIMIT_SQUARE: ClassVar[str] = "inference-only limit, 640x640 (Ultralytics' IR, THROUGHPUT, AsyncInferQueue)"
    LIMIT_RECT: ClassVar[str] = "inference-only limit, 640x384 (yolo_adapters' IR, THROUGHPUT, AsyncInferQueue)"
    LIMIT_DECODE: ClassVar[str] = (
        "decode + letterbox + inference bound, 640x384 (same IR, one loop, no post-processing)"
    )
    LIMIT_INT8: ClassVar[str] = (
        "inference-only limit, INT8 640x384 (yolo_adapters' INT8 IR, THROUGHPUT, AsyncInferQueue)"
    )
    LIMIT_BF16: ClassVar[str] = (
        "inference-only limit, BF16 640x384 (yolo_adapters' IR compiled bf16, THROUGHPUT, AsyncInferQueue)"
    )

    def bench_rows(self, calibration: Path) -> dict[str, dict[str, Any]]:
        """Latency (with and without the stream pipeline), throughput (dynamic and static 640x640), INT8 calibrated
        on ``calibration`` (when NNCF is installed) and BF16 (on CPUs that have it)."""
        from yolo_adapters.backends.openvino.engine import bf16_supported

        throughput = {"hint": "throughput"}
        rows: dict[str, dict[str, Any]] = {
            "yolo_adapters openvino latency, no pipeline": {"hint": "latency", "pipeline": False},
            "yolo_adapters openvino latency": {"hint": "latency"},
            self.BENCH_THROUGHPUT: throughput,
            "yolo_adapters openvino throughput, static 640x640": {**throughput, "dynamic": False},
            self.BENCH_INT8: {**throughput, "precision": "int8", "calibration": str(calibration), "holdout": 0},
            self.BENCH_BF16: {**throughput, "precision": "bf16"},
        }
        if importlib.util.find_spec("nncf") is None:
            LOGGER.warning("nncf is not installed (pip install 'yolo-adapters[int8]'): no INT8 row")
            rows.pop(self.BENCH_INT8)
        if not bf16_supported("CPU"):
            LOGGER.warning("this CPU has no native bf16 (AMX or AVX512-BF16): no BF16 row")
            rows.pop(self.BENCH_BF16)
        return rows

    def bench_native_rows(self) -> dict[str, Any]:
        """Ultralytics' IR compiled in FP32 (as every row of ours) and as Ultralytics ships it (the CPU's default
        precision: bf16 on AMX CPUs)."""
        return {self.BENCH_NATIVE_FP32: self.force_f32, self.BENCH_NATIVE_AS_SHIPPED: lambda: lambda: None}

    def bench_limits(self) -> dict[str, dict[str, Any]]:
        """The THROUGHPUT-hint limits: Ultralytics' static IR, ours (and its decode-inclusive bound), INT8, BF16."""
        throughput = {"hint": "throughput"}
        return {
            self.BENCH_NATIVE_FP32: {"label": self.LIMIT_SQUARE, "options": throughput},
            self.BENCH_THROUGHPUT: {"label": self.LIMIT_RECT, "options": throughput, "decode": self.LIMIT_DECODE},
            self.BENCH_INT8: {"label": self.LIMIT_INT8, "options": {**throughput, "precision": "int8"}},
            self.BENCH_BF16: {"label": self.LIMIT_BF16, "options": {**throughput, "precision": "bf16"}},
        }

    def bare_infer(self, engine: Engine) -> Any:
        """A bare infer request of the engine's compiled model, outputs read as numpy."""
        compiled = engine.compiled  # type: ignore[attr-defined]
        request = compiled.create_infer_request()
        outputs = len(compiled.outputs)

        def bare(x: Any) -> list[Any]:
            request.infer({0: x})
            return [request.get_output_tensor(i).data for i in range(outputs)]

        return bare

    def bench_notes(self, fps: Mapping[str, float]) -> list[str]:
        """INT8 and BF16 against FP32, and BF16 against Ultralytics' IR as shipped (bf16 on the same CPUs)."""
        notes = []
        if self.BENCH_INT8 in fps and self.BENCH_THROUGHPUT in fps:
            inference = (
                f", inference only {fps[self.LIMIT_INT8] / fps[self.LIMIT_RECT]:.2f}x"
                if self.LIMIT_INT8 in fps and self.LIMIT_RECT in fps
                else ""
            )
            notes.append(
                "INT8 / FP32 in this run (throughput mode, 640x384): end to end "
                f"{fps[self.BENCH_INT8] / fps[self.BENCH_THROUGHPUT]:.2f}x{inference} (NNCF, calibrated on the "
                "bundled images; accuracy: docs/quantization.md)."
            )
        if self.BENCH_BF16 in fps:
            bf16 = fps[self.BENCH_BF16]
            shipped = fps.get(self.BENCH_NATIVE_AS_SHIPPED, float("nan"))
            fp32 = fps.get(self.BENCH_THROUGHPUT, float("nan"))
            notes.append(
                f"BF16 in this run: yolo_adapters (throughput, 640x384) {bf16:.2f} FPS against Ultralytics' native "
                f"OpenVINO as shipped (bf16 here, 640x640) {shipped:.2f} FPS -> {bf16 / shipped:.2f}x; against our "
                f"FP32 {bf16 / fp32:.2f}x (agreement with FP32: docs/quantization.md)."
            )
        return notes

    def machine_facts(self) -> dict[str, str]:
        from yolo_adapters.backends.openvino.engine import bf16_supported

        return {"OpenVINO": self.engine_version(), "CPU bf16": "native" if bf16_supported("CPU") else "none"}

    @staticmethod
    def force_f32() -> Any:
        """Make Ultralytics' own OpenVINO path compile in FP32 (it leaves the CPU's default, bf16 on AMX CPUs,
        except on Arm): wraps ``openvino.Core.compile_model`` in this process only. Returns the undo."""
        import openvino

        original = vars(openvino.Core)["compile_model"]

        def compile_model(self: Any, model: Any, device_name: Any = None, config: Any = None, **kwargs: Any) -> Any:
            config = dict(config or {})
            config.setdefault("INFERENCE_PRECISION_HINT", "f32")
            return original(self, model, device_name, config, **kwargs)

        openvino.Core.compile_model = compile_model
        return lambda: setattr(openvino.Core, "compile_model", original)
