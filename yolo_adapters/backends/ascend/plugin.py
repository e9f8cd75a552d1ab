"""The Ascend backend plugin: device grammar, options, export plan (with its precision mode), loading."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from yolo_adapters.backends.ascend import cann
from yolo_adapters.backends.ascend.atc import MANAGED_FLAGS, artifact_precision, compile_onnx
from yolo_adapters.backends.ascend.engine import AscendEngine
from yolo_adapters.backends.ascend.precision import V1, V2, contradiction, default_mode
from yolo_adapters.backends.base import BackendPlugin, Engine, ExportPlan
from yolo_adapters.errors import BackendUnavailableError, ConversionError, DeviceError, ModelFormatError, OptionError

if TYPE_CHECKING:
    from yolo_adapters.core.model_info import ModelInfo

DEFAULT_GEARS = (1, 2, 4, 8)
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")


def parse_device_ids(device: str) -> list[int]:
    """``"0"`` -> [0]; ``"0,1"`` -> [0, 1]. ACL device ids are ints in 0..255."""
    ids: list[int] = []
    for token in str(device).replace(" ", "").split(",") if str(device).strip() else ["0"]:
        if not token.isdigit():
            raise DeviceError(
                f"Ascend device {device!r} is not a list of NPU ids: use device='ascend:0', 'ascend:1' or 'ascend:0,1'."
            )
        value = int(token)
        if not 0 <= value <= 255:
            raise DeviceError(f"Ascend device id {value} is out of range: NPU ids are 0..255 (see `npu-smi info`).")
        if value in ids:
            raise DeviceError(f"Ascend device id {value} is listed twice in {device!r}.")
        ids.append(value)
    return ids


class AscendPlugin(BackendPlugin):
    name = "ascend"
    device_aliases = ("npu",)
    extra = ""  # ais_bench is not on PyPI
    default_device = "0"
    artifact_suffixes = (".om",)  # also inside Ultralytics' *_ascend_model/ folders
    precisions = ("fp32", "fp16")  # ATC's precision mode, per SoC (precision.py); the ONNX export stays fp32
    option_types: ClassVar[dict[str, tuple[type, ...]]] = {
        "soc_version": (str,),
        "output_type": (str,),
        "precision_mode": (str,),
        "precision_mode_v2": (str,),
        "dynamic_batch_sizes": (list, tuple),
        "atc_args": (list, tuple),
        "metadata": (dict,),
        "task": (str,),
        "names": (dict, list, tuple),
    }

    # -- availability --------------------------------------------------------------------------------
    def missing_requirements(self) -> str | None:
        try:
            found = importlib.util.find_spec("ais_bench") is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return cann.INSTALL_HINT
        if not cann.cann_env_set():
            return cann.CANN_HINT
        try:
            importlib.import_module("ais_bench.infer.interface")
        except ImportError as exc:
            if "libascendcl" in str(exc) or ".so" in str(exc):
                return f"{cann.CANN_HINT} ({exc})"
            return (
                f"ais_bench is installed but cannot be imported ({exc}); reinstall the aclruntime and ais_bench wheels."
            )
        return None

    def claims_device(self, prefix: str) -> bool:
        if prefix == self.name:
            return True
        # "npu" belongs to torch_npu when it is installed; find_spec looks without importing it.
        return prefix == "npu" and importlib.util.find_spec("torch_npu") is None

    def normalize_device(self, prefix: str, spec: str) -> str:
        return spec.replace(" ", "") or self.default_device

    def available_devices(self) -> list[str]:
        count = cann.npu_count()
        return [str(i) for i in range(count)] if count else []

    def environment(self) -> dict[str, Any]:
        """NPUs reported by npu-smi, the SoC, whether ais_bench, atc and the CANN environment are present, and
        the precision mode of every Ascend model in the conversion cache."""
        try:
            bench = importlib.util.find_spec("ais_bench") is not None
        except (ImportError, ValueError):
            bench = False
        smi = shutil.which("npu-smi")
        return {
            "npu_smi": smi,
            "npus": cann.npu_count() if smi else None,
            "soc_version": (cann.resolve_soc({}) if smi else os.environ.get(cann.SOC_ENV)) or None,
            "ais_bench": bench,
            "atc": shutil.which("atc"),
            "cann_env": cann.cann_env_set(),
            "cached_models": cached_precisions(),
        }

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate_options(options)
        soc = checked.get("soc_version")
        if soc is not None and not soc.startswith("Ascend"):
            raise OptionError(
                f"soc_version={soc!r} is not a CANN SoC name; use e.g. 'Ascend310P3' (npu-smi info shows the chip)."
            )
        output_type = checked.get("output_type")
        if output_type is not None:
            if output_type.upper() not in ("FP32", "FP16"):
                raise OptionError(f"output_type={output_type!r}: use 'FP32' or 'FP16' (ATC --output_type).")
            checked["output_type"] = output_type.upper()
        if checked.get("precision_mode") and checked.get("precision_mode_v2"):
            raise OptionError(
                "precision_mode and precision_mode_v2 cannot be combined (ATC refuses both flags together): give one."
            )
        mode = checked.get("precision_mode") or checked.get("precision_mode_v2")
        why = contradiction(checked.get("precision"), mode) if mode else None
        if why:
            raise OptionError(f"{why}. Give precision or the ATC mode, not both (docs/ascend.md, Precision).")
        gears = checked.get("dynamic_batch_sizes")
        if gears is not None:
            if not gears or any(isinstance(g, bool) or not isinstance(g, int) or g < 1 for g in gears):
                raise OptionError(f"dynamic_batch_sizes={gears!r} must be positive ints, e.g. (1, 2, 4, 8).")
            checked["dynamic_batch_sizes"] = tuple(sorted(set(gears)))
        for arg in checked.get("atc_args") or ():
            if not isinstance(arg, str) or not arg.startswith("--") or arg.split("=")[0] in MANAGED_FLAGS:
                raise OptionError(
                    f"atc_args entry {arg!r}: give extra '--flag=value' strings; {', '.join(MANAGED_FLAGS)} are set from options."
                )
        return checked

    def engine_version(self) -> str:
        """ais_bench version and CANN toolkit version: a CANN upgrade recompiles the cached .om files."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            bench = version("ais_bench")
        except PackageNotFoundError:
            bench = (
                getattr(importlib.import_module("ais_bench"), "__version__", "")
                if self.missing_requirements() is None
                else ""
            )
        return f"ais_bench {bench}; CANN {cann.cann_version()}"

    # -- models --------------------------------------------------------------------------------------
    def export_plan(self, device: str, options: Mapping[str, Any], imgsz: Sequence[int], batch: int) -> ExportPlan:
        dynamic = bool(options.get("dynamic"))  # NPUs want static shapes; dynamic means dynamic batch gears
        gears = tuple(options.get("dynamic_batch_sizes") or DEFAULT_GEARS) if dynamic else ()
        soc = cann.resolve_soc(options)
        atc_here = shutil.which("atc") is not None
        if not soc and atc_here:
            raise ConversionError(
                "Cannot tell which Ascend SoC to compile for: npu-smi did not report one. Pass "
                f"soc_version='Ascend310P3' (or your chip) as an option or set {cann.SOC_ENV}=Ascend310P3."
            )
        precision = options.get("precision") or "fp32"
        flag, mode = self.precision_flag_and_mode(options, precision, soc)
        extra = (
            ("atc_soc_version", soc or ""),
            ("atc_output_type", options.get("output_type") or "FP32"),
            ("atc_dynamic_batch_size", gears),
            ("atc_precision", precision),
            ("atc_precision_flag", flag),
            ("atc_precision_mode", mode),
            ("atc_args", tuple(options.get("atc_args") or ())),
        )
        return ExportPlan(
            format="onnx",
            imgsz=(int(imgsz[0]), int(imgsz[1])),
            batch=1 if dynamic else int(batch),
            dynamic=dynamic,
            precision="fp32",  # ATC sets the precision (atc_precision_mode); the ONNX it reads stays FP32
            extra=extra,
        )

    @staticmethod
    def precision_flag_and_mode(options: Mapping[str, Any], precision: str, soc: str | None) -> tuple[str, str]:
        """The ATC flag and mode this compile uses: an explicit option as given, else the SoC's default for
        ``precision``, spelled ``--precision_mode_v2`` where this machine's atc lists it (else the flag every
        CANN version takes, ``--precision_mode``)."""
        v2_here = cann.atc_has_precision_mode_v2()
        if options.get("precision_mode_v2"):
            if v2_here is False:
                raise ConversionError(
                    f"precision_mode_v2={options['precision_mode_v2']!r}: this atc has no --precision_mode_v2 "
                    "(an older CANN: `atc --help` does not list it). Use precision_mode= instead."
                )
            return V2, options["precision_mode_v2"]
        if options.get("precision_mode"):
            return V1, options["precision_mode"]
        return default_mode(precision, soc, bool(v2_here))

    def finish_artifact(self, exported: Path, plan: ExportPlan) -> Path:
        """Compile Ultralytics' ONNX export with atc into ``model_ascend_model/model.om`` + metadata.yaml."""
        return compile_onnx(exported, plan)

    def artifact_info(self, artifact: Path, options: Mapping[str, Any]) -> ModelInfo:
        """metadata.yaml beside the .om; options ``metadata``/``task``/``names`` fill in what is missing."""
        from yolo_adapters.core.model_info import ModelInfo, read_metadata_yaml

        meta = dict(options.get("metadata") or {})
        if options.get("task"):
            meta["task"] = options["task"]
        if options.get("names") is not None:
            names = options["names"]
            meta["names"] = dict(enumerate(names)) if isinstance(names, (list, tuple)) else dict(names)
        meta.update(read_metadata_yaml(artifact.parent))
        if "task" not in meta or "names" not in meta:
            raise ModelFormatError(
                f"{artifact}: no metadata.yaml beside it (Ultralytics writes one on export), so task and class "
                "names are unknown. Put the metadata.yaml of its export beside the .om, or pass them as options: "
                "yolo_adapters.activate('ascend', task='detect', names={0: 'person', ...})."
            )
        return ModelInfo.from_metadata(meta, str(artifact))

    def load(self, artifact: Path, device: str, options: Mapping[str, Any]) -> Engine:
        ids = parse_device_ids(device)
        count = cann.npu_count()
        if count is not None:
            for i in ids:
                if i >= count:
                    raise DeviceError(
                        f"ascend:{i} does not exist: npu-smi reports {count} NPU device(s) here "
                        f"(ids 0..{count - 1}). Use device='ascend:0'"
                        + (f" or 'ascend:0,{count - 1}'." if count > 1 else ".")
                    )
        om = Path(artifact).resolve()
        if not _SAFE_PATH.match(str(om)):
            raise ModelFormatError(
                f"ais_bench only opens .om paths made of letters, digits and _ . / - ; {om} has other characters. "
                "Move or rename it (or set YOLO_ADAPTERS_CACHE to such a folder for converted models)."
            )
        missing = self.missing_requirements()
        if missing:
            raise BackendUnavailableError(missing)
        from ais_bench.infer.interface import InferSession

        return AscendEngine(om, ids, options, InferSession)

    def shape_budget(self, device: str, options: Mapping[str, Any]) -> int:
        """Two rect shapes besides the square: each is an ATC compile, minutes on a real toolkit."""
        return 2

    def shape_min_frames(self, device: str, options: Mapping[str, Any]) -> int:
        """An ATC compile (minutes) against milliseconds saved per frame on the card: photos of mixed sizes stay
        square unless their shape is pinned or converted ahead (videos and streams take theirs at once)."""
        return 100_000

    # -- Ray actors --------------------------------------------------------------------------------------
    def accelerator_request(self, device: str, cluster: Mapping[str, float]) -> tuple[float | None, dict[str, float]]:
        """One Ray "NPU" per actor, when the cluster has NPUs (else the device is opened as given)."""
        return (None, {"NPU": 1.0}) if cluster.get("NPU", 0) >= 1 else (None, {})

    def accelerator_device(self, device: str, assigned: Mapping[str, Sequence[Any]], env: Mapping[str, str]) -> str:
        """The NPUs Ray assigned: "0,1" for two where Ray set ``ASCEND_RT_VISIBLE_DEVICES`` (the actor sees only its
        own, numbered from 0), the physical ids where it was told not to (``RAY_EXPERIMENTAL_NOSET_*``)."""
        ids = [str(i) for i in assigned.get("NPU", ())]
        if not ids:
            return device
        if env.get("ASCEND_RT_VISIBLE_DEVICES"):
            return ",".join(str(i) for i in range(len(ids)))
        return ",".join(ids)


def cached_precisions() -> dict[str, str]:
    """Cache entry -> how its .om was compiled ("--precision_mode=force_fp32, Ascend310P3"), Ascend entries only."""
    from yolo_adapters.core.cache import ArtifactCache

    try:
        entries = ArtifactCache().entries()
    except Exception:  # an unwritable or missing cache is reported by `info` itself
        return {}
    found = {}
    for entry in entries:
        if (entry.get("fields") or {}).get("backend") != "ascend" or not entry.get("artifact"):
            continue
        om = Path(entry["path"]) / entry["artifact"]
        precision = artifact_precision(om)
        found[entry["key"]] = f"{precision.label() or 'precision unknown'}, {precision.soc or 'SoC unknown'}"
    return found
