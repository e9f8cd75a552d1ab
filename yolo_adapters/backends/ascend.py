"""Huawei Ascend: Ultralytics models as CANN offline models (.om) run by ais_bench's ``InferSession``.

Device strings: ``ascend`` (NPU 0), ``ascend:1``, ``ascend:0,1`` (one session per NPU, batches spread over
them), and ``npu``/``npu:N`` when torch_npu is not installed (with torch_npu, ``npu`` stays PyTorch's).
A ``.pt`` is exported to ONNX by Ultralytics and compiled by CANN's ``atc`` into the conversion cache; an
``.om`` file or an Ultralytics ``*_ascend_model/`` folder is used as it is. The ais_bench contract this code
honours is DESIGN.md section 3; ``yolo_adapters.testing`` emulates it for machines without a card.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import queue
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import numpy as np

from ..parity import Tolerances
from ..errors import BackendUnavailableError, ConversionError, DeviceError, ModelFormatError, OptionError
from .base import Backend, Engine, ExportPlan

if TYPE_CHECKING:
    from ..model_info import ModelInfo

LOGGER = logging.getLogger("yolo_adapters")

SOC_ENV = "YOLO_ADAPTERS_SOC"
#: Parity tolerances for an .om built with output_type="FP16". float16 keeps 11 significant bits: a score near
#: 1 is rounded by up to 4.9e-4 (score 1e-3 -> 2e-3), and scores of neighbouring anchors can tie exactly, so
#: NMS may keep the neighbour (measured on bus.jpg: box IoU 0.982 for one person of six; box IoU 0.99 -> 0.98).
#: Keypoints, masks and class probabilities keep the shared tolerances (see docs/ascend.md for what differs).
FP16_TOLERANCES = Tolerances(score=2e-3, box_iou=0.98)
DEFAULT_GEARS = (1, 2, 4, 8)
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")
_CANN_ENV = ("ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME", "ASCEND_OPP_PATH")
_SET_ENV = "source /usr/local/Ascend/ascend-toolkit/set_env.sh"
INSTALL_HINT = (
    "ais_bench is not installed. It is not on PyPI: on the Atlas host, with CANN installed and "
    f"`{_SET_ENV}` sourced, build or download the aclruntime and ais_bench wheels from Huawei's Ascend tools "
    "repository (https://gitee.com/ascend/tools, ais-bench_workload/tool/ais_bench) and "
    "`pip install aclruntime-*.whl ais_bench-*.whl`. See docs/ascend.md. "
    "Without a card, yolo_adapters.testing.emulate_ascend() provides a stand-in for tests."
)
CANN_HINT = (
    "The CANN environment is not set up in this shell (ASCEND_HOME_PATH / ASCEND_TOOLKIT_HOME are unset, "
    f"so ais_bench cannot load libascendcl.so): run `{_SET_ENV}` (or your CANN install's set_env.sh) first."
)
# ACL type names as ``aclruntime.dtype`` spells them, and their numeric codes (aclDataType).
_DTYPES = {
    "float32": np.float32, "float": np.float32, "float16": np.float16, "half": np.float16, "float64": np.float64,
    "double": np.float64, "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
    "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64, "bool": np.bool_,
}  # fmt: skip
_ACL_CODES = {0: np.float32, 1: np.float16, 2: np.int8, 3: np.int32, 4: np.uint8, 6: np.int16, 7: np.uint16,
              8: np.uint32, 9: np.int64, 10: np.uint64, 11: np.float64, 12: np.bool_}  # fmt: skip


# -- the machine: CANN tools ----------------------------------------------------------------------------
def _run_tool(argv: list[str], timeout: float = 20.0) -> str | None:
    """stdout of a CANN tool, or None when it is absent or fails (callers fall back or explain)."""
    exe = shutil.which(argv[0])
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def npu_count() -> int | None:
    """How many NPU device ids exist (``npu-smi info -l``: chips summed over cards); None when unknown."""
    text = _run_tool(["npu-smi", "info", "-l"])
    if not text:
        return None
    chips = [int(m) for m in re.findall(r"Chip Count\s*:\s*(\d+)", text)]
    if chips:
        return sum(chips)
    total = re.search(r"Total Count\s*:\s*(\d+)", text)
    return int(total.group(1)) if total else None


def detect_soc() -> str | None:
    """The ``--soc_version`` of the first NPU from ``npu-smi info`` (chip "310P3" -> "Ascend310P3")."""
    text = _run_tool(["npu-smi", "info"])
    if not text:
        return None
    match = re.search(r"^\|\s*\d+\s+((?:310|910)[0-9A-Za-z]*)\s", text, re.MULTILINE)
    return f"Ascend{match.group(1)}" if match else None


def resolve_soc(options: Mapping[str, Any]) -> str | None:
    """SoC to compile for: option ``soc_version``, else env YOLO_ADAPTERS_SOC, else what npu-smi reports."""
    return options.get("soc_version") or os.environ.get(SOC_ENV) or detect_soc()


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


def _dtype_of(desc: Any) -> np.dtype | None:
    """numpy dtype of an aclruntime tensor_desc (enum member, name string or aclDataType code)."""
    datatype = getattr(desc, "datatype", None)
    if isinstance(datatype, (np.dtype, type)) and datatype is not None:
        try:
            return np.dtype(datatype)
        except TypeError:
            pass
    name = getattr(datatype, "name", None) or str(datatype)
    key = name.split(".")[-1].lower().replace("acl_", "")
    if key in _DTYPES:
        return np.dtype(_DTYPES[key])
    code = getattr(datatype, "value", datatype)
    return np.dtype(_ACL_CODES[code]) if isinstance(code, int) and code in _ACL_CODES else None


# -- sessions: one per (model file, NPU), shared by every engine in the process ---------------------------
@dataclass(eq=False)
class SharedSession:
    """An InferSession with the lock that serialises it (ais_bench has no internal lock)."""

    session: Any
    device_id: int
    key: tuple
    lock: threading.Lock = field(default_factory=threading.Lock)
    refs: int = 0


_sessions_lock = threading.Lock()
_sessions: dict[tuple, SharedSession] = {}


def _acquire(session_cls: Any, om: Path, device_id: int) -> SharedSession:
    stat = om.stat()
    key = (id(session_cls), str(om), stat.st_mtime_ns, stat.st_size, device_id)
    with _sessions_lock:
        shared = _sessions.get(key)
        if shared is None:
            try:
                session = session_cls(device_id=device_id, model_path=str(om))
            except (ValueError, TypeError) as exc:
                raise ModelFormatError(f"ais_bench refused {om} for NPU {device_id}: {exc}") from exc
            except RuntimeError as exc:
                raise DeviceError(
                    f"ais_bench could not load {om} on NPU {device_id}: {exc}. Check `npu-smi info` (is NPU "
                    f"{device_id} present and free?) and that the .om was compiled for this SoC."
                ) from exc
            shared = _sessions[key] = SharedSession(session, device_id, key)
        shared.refs += 1
        return shared


def _release(shared: SharedSession) -> None:
    with _sessions_lock:
        shared.refs -= 1
        if shared.refs > 0:
            return
        _sessions.pop(shared.key, None)
    free = getattr(shared.session, "free_resource", None)  # absent in older ais_bench builds
    if callable(free):
        with shared.lock:
            try:
                free()
            except Exception as exc:  # teardown must not raise (it may run from a finalizer)
                LOGGER.warning("yolo_adapters: ais_bench free_resource failed on NPU %s: %s", shared.device_id, exc)


def _release_all(handles: list[SharedSession]) -> None:
    while handles:
        _release(handles.pop())


# -- the backend -------------------------------------------------------------------------------------------
class AscendBackend(Backend):
    name = "ascend"
    device_aliases = ("npu",)
    extra = ""  # ais_bench is not on PyPI
    default_device = "0"
    artifact_suffixes = (".om",)  # also inside Ultralytics' *_ascend_model/ folders
    precisions = ("fp32", "fp16")  # fp16: ATC --precision_mode=force_fp16 (the ONNX export stays fp32)
    option_types: ClassVar[dict[str, tuple[type, ...]]] = {
        "soc_version": (str,),
        "output_type": (str,),
        "precision_mode": (str,),
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
            return INSTALL_HINT
        if not any(os.environ.get(k) for k in _CANN_ENV):
            return CANN_HINT
        try:
            importlib.import_module("ais_bench.infer.interface")
        except ImportError as exc:
            if "libascendcl" in str(exc) or ".so" in str(exc):
                return f"{CANN_HINT} ({exc})"
            return f"ais_bench is installed but cannot be imported ({exc}); reinstall the aclruntime and ais_bench wheels."
        return None

    def claims_device(self, prefix: str) -> bool:
        if prefix == self.name:
            return True
        # "npu" belongs to torch_npu when it is installed; find_spec looks without importing it.
        return prefix == "npu" and importlib.util.find_spec("torch_npu") is None

    def normalize_device(self, prefix: str, spec: str) -> str:
        return spec.replace(" ", "") or self.default_device

    def available_devices(self) -> list[str]:
        count = npu_count()
        return [str(i) for i in range(count)] if count else []

    def environment(self) -> dict[str, Any]:
        """NPUs reported by npu-smi, the SoC, and whether ais_bench, atc and the CANN environment are present."""
        try:
            bench = importlib.util.find_spec("ais_bench") is not None
        except (ImportError, ValueError):
            bench = False
        smi = shutil.which("npu-smi")
        return {
            "npu_smi": smi,
            "npus": npu_count() if smi else None,
            "soc_version": (resolve_soc({}) if smi else os.environ.get(SOC_ENV)) or None,
            "ais_bench": bench,
            "atc": shutil.which("atc"),
            "cann_env": any(os.environ.get(k) for k in _CANN_ENV),
        }

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate_options(options)
        soc = checked.get("soc_version")
        if soc is not None and not soc.startswith("Ascend"):
            raise OptionError(f"soc_version={soc!r} is not a CANN SoC name; use e.g. 'Ascend310P3' (npu-smi info shows the chip).")
        output_type = checked.get("output_type")
        if output_type is not None:
            if output_type.upper() not in ("FP32", "FP16"):
                raise OptionError(f"output_type={output_type!r}: use 'FP32' or 'FP16' (ATC --output_type).")
            checked["output_type"] = output_type.upper()
        gears = checked.get("dynamic_batch_sizes")
        if gears is not None:
            if not gears or any(isinstance(g, bool) or not isinstance(g, int) or g < 1 for g in gears):
                raise OptionError(f"dynamic_batch_sizes={gears!r} must be positive ints, e.g. (1, 2, 4, 8).")
            checked["dynamic_batch_sizes"] = tuple(sorted(set(gears)))
        managed = ("--framework", "--model", "--output", "--input_format", "--input_shape", "--soc_version",
                   "--output_type", "--dynamic_batch_size", "--precision_mode")  # fmt: skip
        for arg in checked.get("atc_args") or ():
            if not isinstance(arg, str) or not arg.startswith("--") or arg.split("=")[0] in managed:
                raise OptionError(f"atc_args entry {arg!r}: give extra '--flag=value' strings; {', '.join(managed)} are set from options.")
        return checked

    def engine_version(self) -> str:
        """ais_bench version and CANN toolkit version: a CANN upgrade recompiles the cached .om files."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            bench = version("ais_bench")
        except PackageNotFoundError:
            bench = getattr(importlib.import_module("ais_bench"), "__version__", "") if self.missing_requirements() is None else ""
        cann = ""
        home = os.environ.get("ASCEND_TOOLKIT_HOME") or os.environ.get("ASCEND_HOME_PATH")
        for name in ("version.info", "version.cfg"):
            if home and (Path(home) / name).is_file():
                cann = (Path(home) / name).read_text().strip().splitlines()[0]
                break
        return f"ais_bench {bench}; CANN {cann}"

    # -- models --------------------------------------------------------------------------------------
    def export_plan(self, device: str, options: Mapping[str, Any], imgsz: Sequence[int], batch: int) -> ExportPlan:
        dynamic = bool(options.get("dynamic"))  # NPUs want static shapes; dynamic means dynamic batch gears
        gears = tuple(options.get("dynamic_batch_sizes") or DEFAULT_GEARS) if dynamic else ()
        precision_mode = options.get("precision_mode") or ("force_fp16" if options.get("precision") == "fp16" else "")
        soc = resolve_soc(options)
        if not soc and shutil.which("atc"):
            raise ConversionError(
                "Cannot tell which Ascend SoC to compile for: npu-smi did not report one. Pass "
                f"soc_version='Ascend310P3' (or your chip) as an option or set {SOC_ENV}=Ascend310P3."
            )
        extra = (
            ("atc_soc_version", soc or ""),
            ("atc_output_type", options.get("output_type") or "FP32"),
            ("atc_dynamic_batch_size", gears),
            ("atc_precision_mode", precision_mode),
            ("atc_args", tuple(options.get("atc_args") or ())),
        )
        return ExportPlan(
            format="onnx",
            imgsz=(int(imgsz[0]), int(imgsz[1])),
            batch=1 if dynamic else int(batch),
            dynamic=dynamic,
            precision="fp32",
            extra=extra,
        )

    def finish_artifact(self, exported: Path, plan: ExportPlan) -> Path:
        """Compile Ultralytics' ONNX export with atc into ``model_ascend_model/model.om`` + metadata.yaml."""
        onnx_file = exported if exported.suffix == ".onnx" else next(iter(sorted(Path(exported).rglob("*.onnx"))), None)
        if onnx_file is None or not onnx_file.is_file():
            raise ConversionError(f"Ultralytics' ONNX export produced no .onnx file in {exported}.")
        settings = dict(plan.extra)
        out_dir = onnx_file.parent / f"{onnx_file.stem}_ascend_model"
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_metadata(onnx_file, out_dir, plan, settings)
        atc = shutil.which("atc")
        if atc is None:
            raise ConversionError(_manual_conversion_message(onnx_file, out_dir, plan, settings))
        argv = atc_command(onnx_file, out_dir / onnx_file.stem, plan, settings)
        with tempfile.TemporaryDirectory(prefix="yolo_adapters_atc_") as scratch:  # atc litters its cwd
            done = subprocess.run([atc, *argv[1:]], cwd=scratch, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + "\n" + done.stderr).strip().splitlines()[-15:])
            raise ConversionError(f"atc failed (exit {done.returncode}) running:\n  {shlex.join(argv)}\n{tail}")
        found = sorted(out_dir.glob(f"{onnx_file.stem}*.om"))  # some CANN versions append _linux_<arch>
        if not found:
            raise ConversionError(f"atc reported success but wrote no .om into {out_dir}:\n  {shlex.join(argv)}")
        return found[0]

    def artifact_info(self, artifact: Path, options: Mapping[str, Any]) -> "ModelInfo":
        """metadata.yaml beside the .om; options ``metadata``/``task``/``names`` fill in what is missing."""
        from ..model_info import ModelInfo, read_metadata_yaml

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
        count = npu_count()
        if count is not None:
            for i in ids:
                if i >= count:
                    raise DeviceError(
                        f"ascend:{i} does not exist: npu-smi reports {count} NPU device(s) here "
                        f"(ids 0..{count - 1}). Use device='ascend:0'" + (f" or 'ascend:0,{count - 1}'." if count > 1 else ".")
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
        from ais_bench.infer.interface import InferSession  # type: ignore[import-not-found]

        return AscendEngine(om, ids, options, InferSession)


def atc_command(onnx_file: Path, output: Path, plan: ExportPlan, settings: Mapping[str, Any]) -> list[str]:
    """The atc command line for ``plan`` (``--output`` without the .om suffix atc appends)."""
    h, w = plan.imgsz
    gears = tuple(settings.get("atc_dynamic_batch_size") or ())
    batch = "-1" if gears else str(plan.batch)
    argv = [
        "atc", "--framework=5", f"--model={onnx_file}", f"--output={output}", "--input_format=NCHW",
        f"--input_shape=images:{batch},3,{h},{w}",
        f"--soc_version={settings.get('atc_soc_version') or '<SOC e.g. Ascend310P3: npu-smi info shows the chip>'}",
    ]  # fmt: skip
    if gears:
        argv.append(f"--dynamic_batch_size={','.join(str(g) for g in gears)}")
    if settings.get("atc_output_type", "FP32") == "FP16":
        argv.append("--output_type=FP16")
    if settings.get("atc_precision_mode"):
        argv.append(f"--precision_mode={settings['atc_precision_mode']}")
    argv.extend(settings.get("atc_args") or ())
    return argv


def _write_metadata(onnx_file: Path, out_dir: Path, plan: ExportPlan, settings: Mapping[str, Any]) -> None:
    """Ultralytics' metadata (from the ONNX) as metadata.yaml beside the .om, plus how atc was asked to build it."""
    import yaml

    from ..model_info import _literal, read_onnx_metadata

    meta = {k: _literal(v) for k, v in read_onnx_metadata(onnx_file).items()}
    meta["ascend"] = {
        "soc_version": settings.get("atc_soc_version") or None,
        "output_type": settings.get("atc_output_type", "FP32"),
        "dynamic_batch_sizes": list(settings.get("atc_dynamic_batch_size") or ()),
        "input_shape": [-1 if settings.get("atc_dynamic_batch_size") else plan.batch, 3, *plan.imgsz],
    }
    (out_dir / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))


def _manual_conversion_message(onnx_file: Path, out_dir: Path, plan: ExportPlan, settings: Mapping[str, Any]) -> str:
    """No atc here: keep the ONNX and metadata outside the (discarded) staging folder and say what to run."""
    staging = onnx_file.parent
    root = staging.parent.parent if staging.parent.name == "artifacts" else Path(tempfile.gettempdir())
    key = staging.name.removeprefix(".staging-").rsplit("-", 1)[0] or "model"
    pending = root / "ascend_pending" / key
    pending.mkdir(parents=True, exist_ok=True)
    shutil.copy2(onnx_file, pending / onnx_file.name)
    shutil.copy2(out_dir / "metadata.yaml", pending / "metadata.yaml")
    argv = atc_command(Path(onnx_file.name), Path(onnx_file.stem), plan, settings)
    command = f"cd {shlex.quote(str(pending))} && {shlex.join(argv)}"
    return (
        "CANN's atc compiler is not on PATH, so the ONNX export cannot be compiled into an .om here. "
        f"The exported model and its metadata are kept in {pending}. On a machine with CANN installed "
        f"(`{_SET_ENV}`), in a copy of that folder, run:\n\n  {command}\n\n"
        f"then put the resulting {onnx_file.stem}.om into {pending} (beside metadata.yaml) and pass that .om as the "
        f"model: YOLO('{pending / (onnx_file.stem + '.om')}', task='{_task_of(pending)}')."
    )


def _task_of(folder: Path) -> str:
    from ..model_info import read_metadata_yaml

    return str(read_metadata_yaml(folder).get("task", "detect"))


# -- the engine --------------------------------------------------------------------------------------------
class AscendEngine(Engine):
    """One InferSession per NPU; each call borrows an idle session (FIFO, so calls rotate over the NPUs).

    A dynamic-batch .om reports batch -1 but fixed H and W: ``dynamic`` stays False so Ultralytics letterboxes
    every frame to the compiled size, and batches are padded up to the nearest compiled gear here.
    """

    def __init__(self, om: Path, device_ids: list[int], options: Mapping[str, Any], session_cls: Any) -> None:
        super().__init__()
        self.om, self.device_ids = om, list(device_ids)
        handles: list[SharedSession] = []
        try:
            for device_id in self.device_ids:
                handles.append(_acquire(session_cls, om, device_id))
        except BaseException:
            _release_all(handles)
            raise
        self._handles = handles
        self._finalizer = weakref.finalize(self, _release_all, list(handles))
        self._idle: queue.SimpleQueue[SharedSession] = queue.SimpleQueue()
        for handle in handles:
            self._idle.put(handle)

        desc = handles[0].session.get_inputs()[0]
        shape = tuple(int(d) for d in desc.shape)
        if len(shape) != 4 or any(d < 0 for d in shape[1:]):
            self.close()
            raise ModelFormatError(
                f"{om} takes input shape {list(shape)}; yolo_adapters runs NCHW .om files with a fixed HxW "
                "(static, or a dynamic batch built with --dynamic_batch_size)."
            )
        self.input_shape = shape
        dtype = _dtype_of(desc)
        per_item = int(desc.realsize) // max(int(np.prod(shape[1:])) * (shape[0] if shape[0] > 0 else 1), 1)
        self.input_dtype = dtype or np.dtype({2: np.float16, 4: np.float32}.get(per_item, np.float32))
        self._sample_bytes = int(np.prod(shape[1:])) * self.input_dtype.itemsize
        self.gears = self._find_gears(options, handles[0].session) if shape[0] < 0 else (shape[0],)
        requested = options.get("imgsz")
        if requested:
            h, w = (requested, requested) if isinstance(requested, int) else tuple(int(v) for v in requested)
            if (h, w) != shape[2:]:
                self.close()
                raise ModelFormatError(
                    f"{om} was compiled for {shape[2]}x{shape[3]} images but imgsz={[h, w]} was requested. "
                    f"Pass imgsz={[shape[2], shape[3]]}, or recompile it with atc --input_shape=images:"
                    f"{shape[0]},3,{h},{w} (or pass the .pt and yolo_adapters converts it for imgsz={[h, w]})."
                )

    @property
    def dynamic(self) -> bool:
        """Only the batch can be dynamic in an .om run here; H and W are fixed (see class docstring)."""
        return False

    def _find_gears(self, options: Mapping[str, Any], session: Any) -> tuple[int, ...]:
        from ..model_info import read_metadata_yaml

        gears = options.get("dynamic_batch_sizes") or (read_metadata_yaml(self.om.parent).get("ascend") or {}).get(
            "dynamic_batch_sizes"
        )
        if gears:
            return tuple(sorted(int(g) for g in gears))
        get_max = getattr(session, "get_max_dym_batchsize", None)
        if callable(get_max):
            return (int(get_max()),)  # the largest gear always exists; smaller ones are unknown
        raise ModelFormatError(f"{self.om} has a dynamic batch; pass dynamic_batch_sizes=(...) as atc was given them.")

    # -- inference -----------------------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(batch, dtype=self.input_dtype)  # the session converts nothing
        if tuple(x.shape[1:]) != self.input_shape[1:]:
            raise ModelFormatError(f"{self.om} takes {list(self.input_shape)} inputs, got {list(x.shape)}.")
        if self.input_shape[0] > 0:
            return self._run(x, "static")
        parts: list[list[np.ndarray]] = []
        biggest = self.gears[-1]
        for start in range(0, x.shape[0], biggest):
            chunk = x[start : start + biggest]
            real = chunk.shape[0]
            gear = next(g for g in self.gears if g >= real)
            if gear > real:
                chunk = np.concatenate([chunk, np.zeros((gear - real, *chunk.shape[1:]), chunk.dtype)])
            parts.append([o[:real] for o in self._run(np.ascontiguousarray(chunk), "dymbatch")])
        return parts[0] if len(parts) == 1 else [np.concatenate(outs) for outs in zip(*parts)]

    def _run(self, x: np.ndarray, mode: str) -> list[np.ndarray]:
        if x.nbytes != self._sample_bytes * x.shape[0]:  # guard: a wrong-sized feed is garbage on a card
            raise ModelFormatError(f"feed of {x.nbytes} bytes does not match {self.om}'s input size")
        handle = self._idle.get()  # blocks until a session is free
        try:
            with handle.lock:  # the session may be shared with other engines on the same .om and NPU
                self._count()
                outputs = handle.session.infer([x], mode=mode)
        finally:
            self._idle.put(handle)
        return [np.asarray(o) for o in outputs]

    def summary(self) -> list[Any]:
        """ais_bench's timing summary per session (``summary()``, or ``sumary()`` in older builds)."""
        found = []
        for handle in self._handles:
            call = getattr(handle.session, "summary", None) or getattr(handle.session, "sumary", None)
            found.append(call() if callable(call) else None)
        return found

    def close(self) -> None:
        """Release this engine's sessions; the last engine using a session calls its free_resource()."""
        self._finalizer()
