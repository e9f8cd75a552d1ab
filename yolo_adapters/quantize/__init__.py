"""INT8 post-training quantization, calibrated on the images the model will really see.

The flow (``precision="int8"``): Ultralytics exports an FP32 model (an OpenVINO IR, or an ONNX file for ONNX
Runtime) into the cache's staging folder, then the backend's ``finish_artifact`` calls ``quantize_openvino``
(NNCF) or ``quantize_onnx`` (``onnxruntime.quantization.quantize_static``, QDQ), which

1. letterbox the calibration images exactly as Ultralytics' predictor will at run time (``LetterBox`` with
   ``auto=False`` at the model's static input shape, or at ``imgsz`` for a dynamic model; classify models get
   Ultralytics' classify transforms), batched to the model's static batch;
2. keep the head's post-processing in float: the ops between the last learned layers and the outputs (DFL,
   box/keypoint/angle decode, Sigmoid, Softmax...) are found by walking the graph back from its outputs
   (``yolo_adapters.graph``: one walk, with adapters for OpenVINO's and ONNX's graphs), whatever the node names;
3. quantize (NNCF: MIXED preset; ONNX Runtime: per-channel symmetric int8 weights, asymmetric uint8
   activations). With ``max_drop`` and a labelled dataset, NNCF's ``quantize_with_accuracy_control`` reverts
   layers to float until the task's mAP50-95 (top-1 for classify), measured by Ultralytics' own validator on the
   held-back images, drops by at most ``max_drop``;
4. compare INT8 with FP32 on held-back images of the calibration folder (``yolo_adapters.parity``), add FP32
   and INT8 mAP when those images have YOLO labels, and write ``quantization_report.json`` beside the model.

Only images are needed (labels for ``max_drop`` and the mAP figures); with no calibration data it fails before
any export (Ultralytics would download coco8).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from .. import graph
from ..errors import BackendUnavailableError, ConversionError, OptionError

if TYPE_CHECKING:
    from ..backends.base import ExportPlan

LOGGER = logging.getLogger("yolo_adapters")

REPORT_FILE = "quantization_report.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: Options every backend that supports precision="int8" accepts (see docs/quantization.md).
QUANT_OPTIONS: dict[str, tuple[type, ...]] = {
    "calibration": (str, Path, type(None)),  # folder of images (searched recursively), or a YOLO data.yaml
    "calibration_size": (int,),  # at most this many calibration images (default 300, NNCF's default)
    "holdout": (int, type(None)),  # images kept back for the report (default: 20% of the folder, 1..50)
    "fast_bias_correction": (bool,),  # NNCF's fast bias correction: about 2x quicker calibration, less accurate
    "max_drop": (float, int, type(None)),  # accuracy-controlled NNCF quantization: largest metric drop allowed
}
DEFAULT_CALIBRATION_SIZE = 300
PRESET = "mixed"
#: The metric accuracy control keeps (Ultralytics' validator keys): the task's own mAP50-95, top-1 for classify.
CONTROL_METRIC = {
    "detect": "metrics/mAP50-95(B)", "segment": "metrics/mAP50-95(M)", "pose": "metrics/mAP50-95(P)",
    "obb": "metrics/mAP50-95(B)", "classify": "metrics/accuracy_top1",
}  # fmt: skip
_PLAN_KEY = "yolo_adapters_int8"  # not an Ultralytics exporter argument: it only enters the cache key
_LABELS_NEEDED = (
    "a labelled dataset: a YOLO data.yaml, or a folder with images/ and labels/ in YOLO format (labels/NAME.txt "
    "for images/NAME.jpg); for classify, images in one folder per class named like the model's classes"
)


# -- calibration data ----------------------------------------------------------------------------------
def find_images(source: str | Path | None) -> list[Path]:
    """Every image of ``source`` (a folder, searched recursively, or a YOLO data.yaml: the images of its val
    split), sorted; a clear error when there are none."""
    if source is None or str(source) == "":
        raise OptionError(
            "precision='int8' needs calibration images: pass calibration='IMAGES_DIR' (Python) or --data IMAGES_DIR "
            "(CLI), a folder with a few hundred images like the ones the model will see (no labels needed). "
            "yolo_adapters never downloads a dataset for you."
        )
    path = Path(source).expanduser()
    if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        return _yaml_images(path)
    if not path.is_dir():
        raise OptionError(
            f"Calibration folder {path} does not exist (or is not a folder): give a folder of images or a data.yaml."
        )
    images = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise OptionError(
            f"Calibration folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)}): put a few hundred "
            "representative images in it."
        )
    return images


def data_root(source: str | Path) -> Path:
    """The folder image names are relative to: the folder itself, or a data.yaml's dataset ``path``."""
    path = Path(source).expanduser()
    if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        return _yaml_root(path)
    return path


def _yaml_root(path: Path) -> Path:
    from ultralytics.utils import YAML

    data = YAML.load(path) or {}
    root = Path(str(data.get("path") or path.parent)).expanduser()
    return root if root.is_absolute() else (path.parent / root).resolve()


def _yaml_images(path: Path) -> list[Path]:
    """The images of a data.yaml's ``val`` split (a folder, a .txt list of images, or a list of those)."""
    from ultralytics.utils import YAML

    data = YAML.load(path) or {}
    root = _yaml_root(path)
    entries = data.get("val") or data.get("train")
    if not entries:
        raise OptionError(f"{path} names no 'val' (or 'train') images: it is not a YOLO data.yaml.")
    images: set[Path] = set()
    for entry in entries if isinstance(entries, list) else [entries]:
        where = Path(str(entry)).expanduser()
        where = where if where.is_absolute() else root / where
        if where.is_dir():
            images.update(find_images(where))
        elif where.is_file() and where.suffix == ".txt":
            for line in where.read_text().splitlines():
                line = line.strip()
                if line:
                    item = Path(line) if Path(line).is_absolute() else (where.parent / line)
                    images.add(item.resolve())
        else:
            raise OptionError(f"{path}: its split {entry!r} ({where}) does not exist; the dataset is not here.")
    if not images:
        raise OptionError(f"{path}: its val split holds no images.")
    return sorted(images)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def images_digest(images: Sequence[Path], root: Path, labels: bool = False) -> str:
    """Content hash of a calibration set (names relative to ``root`` and bytes; with ``labels``, the YOLO label
    files too): it belongs in the cache key."""
    digest = hashlib.sha256()
    for path in images:
        digest.update(_relative(path, root).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
        label = label_file(path)
        if labels and label.is_file():
            digest.update(b"label\0" + hashlib.sha256(label.read_bytes()).digest())
    return digest.hexdigest()


def split_holdout(images: Sequence[Path], holdout: int | None = None) -> tuple[list[Path], list[Path]]:
    """(calibration images, held-back images): every k-th image is held back for the report.

    Default: 20% of the folder, between 1 and 50; a folder of one image is both calibrated and reported on.
    """
    images = list(images)
    n = len(images)
    count = min(50, max(1, round(0.2 * n))) if holdout is None else int(holdout)
    if n < 2 or count <= 0:
        return images, images if n < 2 else []
    count = min(count, n - 1)
    step = n / count
    held = {int(i * step + step / 2) for i in range(count)}
    return [p for i, p in enumerate(images) if i not in held], [p for i, p in enumerate(images) if i in held]


# -- labels ----------------------------------------------------------------------------------------------
def label_file(image: Path) -> Path:
    """Where Ultralytics looks for ``image``'s YOLO label (the last ``images`` folder becomes ``labels``)."""
    from ultralytics.data.utils import img2label_paths

    return Path(img2label_paths([str(image)])[0])


def class_of(image: Path, names: Mapping[int, str]) -> int | None:
    """Classify label: the index of the class the image's folder is named after, or None."""
    wanted = image.parent.name
    return next((int(i) for i, name in names.items() if str(name) == wanted), None)


def labelled(
    images: Sequence[Path], task: str | None = None, names: Mapping[int, str] | None = None, root: Path | None = None
) -> list[Path]:
    """The images that have a label: a YOLO label file (an empty one is a labelled background image), or for
    classify a parent folder named after one of ``names``. Without ``task`` (before the model is read), either
    kind, a class folder being any sub-folder of ``root`` other than ``images``."""
    out = []
    for image in images:
        if task == "classify":
            found = names is not None and class_of(image, names) is not None
        else:
            found = label_file(image).is_file()
            if task is None and not found and root is not None:
                found = image.parent != root and image.parent.name != "images"
        if found:
            out.append(image)
    return out


def preprocess(image: Path, hw: tuple[int, int], task: str, stride: int = 32) -> np.ndarray:
    """One image as the model sees it at run time: CHW float32 RGB in [0, 1] at exactly ``hw``.

    Detect/segment/pose/obb: Ultralytics' LetterBox with auto=False (what the predictor uses for a static
    shape). Classify: Ultralytics' classify transforms.
    """
    import cv2

    bgr = cv2.imread(str(image))
    if bgr is None:
        raise OptionError(f"Calibration image {image} cannot be read (corrupt, or not an image).")
    if task == "classify":
        from PIL import Image
        from ultralytics.data.augment import classify_transforms

        rgb = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        size = hw if hw[0] != hw[1] else hw[0]
        return classify_transforms(size)(rgb).numpy().astype(np.float32)
    from ultralytics.data.augment import LetterBox

    boxed = LetterBox(new_shape=tuple(hw), auto=False, stride=stride)(image=bgr)
    return np.ascontiguousarray(boxed[..., ::-1].transpose(2, 0, 1), dtype=np.float32) / 255.0


def calibration_batches(
    images: Sequence[Path], shape: Sequence[int], task: str, stride: int = 32, desc: str = "letterboxing"
) -> list[np.ndarray]:
    """Calibration tensors of exactly ``shape`` (N, C, H, W); a short last batch is filled from the first images."""
    batch, hw = int(shape[0]), (int(shape[2]), int(shape[3]))
    tensors = [preprocess(p, hw, task, stride) for p in tqdm(images, desc=f"yolo_adapters: {desc}", unit="img")]
    out = []
    for start in range(0, len(tensors), batch):
        chunk = tensors[start : start + batch]
        chunk += [tensors[i % len(tensors)] for i in range(batch - len(chunk))]
        out.append(np.stack(chunk))
    return out


# -- what stays in float (yolo_adapters.graph: one walk for OpenVINO and ONNX graphs) -------------------------
head_postprocessing = graph.head_postprocessing
float_scope = graph.float_scope


# -- the cache key and plan ------------------------------------------------------------------------------
def int8_plan(plan: "ExportPlan", options: Mapping[str, Any], backend: str = "openvino") -> "ExportPlan":
    """``plan`` for precision='int8': FP32 export, plus the calibration settings (content hash in the key,
    folder path outside it). Fails here, before any export, when there is no calibration data, no quantizer,
    or ``max_drop`` without labels."""
    tool = require_quantizer(backend)
    images = find_images(options.get("calibration"))
    root = data_root(options["calibration"])
    size = int(options.get("calibration_size") or DEFAULT_CALIBRATION_SIZE)
    if size < 1:
        raise OptionError(f"calibration_size={size} must be at least 1.")
    holdout = options.get("holdout")
    if holdout is not None and holdout < 0:
        raise OptionError(f"holdout={holdout} must be >= 0.")
    max_drop = options.get("max_drop")
    if max_drop is not None:
        max_drop = float(max_drop)
        if not 0 <= max_drop < 1:
            raise OptionError(f"max_drop={max_drop} is an absolute metric drop (mAP50-95 or top-1 in 0..1): use e.g. 0.01.")
        if backend != "openvino":
            raise OptionError(
                f"max_drop (accuracy-controlled quantization) is NNCF's, on the openvino backend; the {backend!r} "
                "backend quantizes with fixed settings: leave max_drop out, or use --backend openvino."
            )
        _, held = split_holdout(images, holdout)
        if not held:
            raise OptionError("max_drop needs held-back images to measure the metric on: holdout must be >= 1.")
        if not labelled(held, root=root):
            raise OptionError(
                f"max_drop needs labels for the held-back images of {options['calibration']} (none of "
                f"{', '.join(p.name for p in held[:3])}{'...' if len(held) > 3 else ''} has one): give {_LABELS_NEEDED}."
            )
    fast = bool(options.get("fast_bias_correction", False))
    key = (("data", images_digest(images, root, labels=True)), ("size", size), ("holdout", holdout),
           ("preset", PRESET), ("fast_bias_correction", fast), ("max_drop", max_drop), ("tool", tool),
           ("scheme", 3))  # fmt: skip
    return dataclasses.replace(
        plan,
        extra=tuple(plan.extra) + ((_PLAN_KEY, key),),
        inputs={"calibration": str(Path(options["calibration"]).expanduser().resolve())},
    )


def require_quantizer(backend: str = "openvino") -> str:
    """The quantizer's name and version (part of the cache key); a clear error when it is not installed."""
    import importlib.util

    if backend == "openvino":
        require_nncf()
        import nncf

        return f"nncf {nncf.__version__}"
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        raise BackendUnavailableError(
            "precision='int8' on onnxruntime quantizes with onnxruntime.quantization, which needs onnxruntime and "
            "onnx: pip install 'yolo-adapters[onnxruntime]'."
        )
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def require_nncf() -> None:
    import importlib.util

    if importlib.util.find_spec("nncf") is None:
        raise BackendUnavailableError(
            "precision='int8' quantizes with NNCF, which is not installed: pip install 'yolo-adapters[int8]' "
            "(or pip install nncf)."
        )


def plan_settings(plan: "ExportPlan") -> dict[str, Any]:
    settings = dict(dict(plan.extra).get(_PLAN_KEY, ()))
    settings["calibration"] = (plan.inputs or {}).get("calibration")
    return settings


def _calibration_split(settings: Mapping[str, Any]) -> tuple[Path, list[Path], list[Path]]:
    source = settings["calibration"]
    calib, held = split_holdout(find_images(source), settings.get("holdout"))
    return data_root(source), calib[: settings.get("size") or DEFAULT_CALIBRATION_SIZE], held


def _calibration_section(settings: Mapping[str, Any], root: Path, calib: list, held: list, batches: int) -> dict:
    return {
        "folder": str(settings["calibration"]),
        "digest": settings.get("data"),
        "images": len(calib),
        "batches": batches,
        "held_back": [_relative(p, root) for p in held],
    }


# -- OpenVINO ---------------------------------------------------------------------------------------------
def quantize_openvino(fp32_xml: Path, plan: "ExportPlan") -> Path:
    """Quantize the FP32 IR at ``fp32_xml`` into a sibling ``*_int8_openvino_model/`` folder; returns its .xml.

    The report goes next to it; the FP32 IR is removed afterwards (the cache keeps only what runs).
    """
    require_nncf()
    import nncf
    import openvino as ov

    from ..runtime import read_artifact_info

    settings = plan_settings(plan)
    info = read_artifact_info(fp32_xml)
    task = info.task or "detect"
    root, calib_images, held = _calibration_split(settings)

    model = ov.Core().read_model(str(fp32_xml))
    shape = static_shape(model, plan)
    batches = calibration_batches(calib_images, shape, task, info.stride or 32)
    scope = float_scope(model)
    ignored = sorted({name for names in scope.values() for name in names})
    LOGGER.info("yolo_adapters: INT8 calibration on %d images at %s; %d ops kept in float",
                len(calib_images), shape, len(ignored))  # fmt: skip

    bar = tqdm(total=len(batches), desc="yolo_adapters: INT8 calibration", unit="batch")

    def feed(tensor: np.ndarray) -> np.ndarray:
        if bar.n < bar.total:
            bar.update()
        return tensor

    fast = bool(settings.get("fast_bias_correction"))
    control = None
    try:
        if settings.get("max_drop") is not None:
            quantized, control = _quantize_with_accuracy_control(
                nncf, model, nncf.Dataset(batches, feed), fp32_xml, info, held, shape, plan, settings, ignored
            )
        else:
            quantized = nncf.quantize(
                model,
                nncf.Dataset(batches, feed),
                **quantize_arguments(nncf, fast=fast),
                subset_size=len(batches),
                ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
            )
    except OptionError:
        raise
    except Exception as exc:
        raise ConversionError(f"NNCF could not quantize {fp32_xml}: {type(exc).__name__}: {exc}") from exc
    finally:
        bar.close()

    fp32_dir = fp32_xml.parent
    out_dir = fp32_dir.with_name(fp32_dir.name.replace("_openvino_model", "") + "_int8_openvino_model")
    out_dir.mkdir(parents=True, exist_ok=True)
    int8_xml = out_dir / fp32_xml.name
    ov.save_model(quantized, str(int8_xml), compress_to_fp16=False)
    for extra in fp32_dir.iterdir():  # metadata.yaml and anything else Ultralytics wrote beside the IR
        if extra.suffix not in (".xml", ".bin") and extra.is_file():
            shutil.copy2(extra, out_dir / extra.name)

    report = {
        "backend": "openvino",
        "task": task,
        "precision": "int8",
        "artifact": int8_xml.name,
        "input_shape": [int(v) for v in shape],
        "dynamic": plan.dynamic,
        "calibration": _calibration_section(settings, root, calib_images, held, len(batches)),
        "quantization": {
            "tool": f"nncf {nncf.__version__}",
            "preset": PRESET,
            "settings": {"model_type": "transformer", "activation_ranges": "minmax", "fast_bias_correction": fast},
            "kept_in_float": graph.count_kinds(model, ignored),
            "kept_in_float_by_reason": {k: len(v) for k, v in scope.items()},
            "fake_quantize": count_fake_quantize(quantized),
            "quantizers": count_fake_quantize(quantized),
        },
        "accuracy_control": control,
    }
    _finish_report(report, fp32_xml, int8_xml, held, plan, task, info, "openvino")
    write_report(out_dir, report)
    shutil.rmtree(fp32_dir, ignore_errors=True)
    return int8_xml


def quantize_arguments(nncf: Any, fast: bool = False) -> dict[str, Any]:
    """The NNCF settings (measured on yolo11n-pose, docs/quantization.md): MIXED preset, the transformer model
    type (attention-aware quantizer placement), full bias correction and plain min/max activation ranges."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    return {
        "preset": nncf.QuantizationPreset.MIXED,
        "model_type": nncf.ModelType.TRANSFORMER,
        "fast_bias_correction": fast,
        "advanced_parameters": AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX
        ),
    }


def _quantize_with_accuracy_control(
    nncf: Any, model: Any, calibration: Any, fp32_xml: Path, info: Any, held: list[Path], shape: Sequence[int],
    plan: "ExportPlan", settings: Mapping[str, Any], ignored: list[str],
) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """``nncf.quantize_with_accuracy_control`` with the settings above; its validation function is the task's
    metric (``CONTROL_METRIC``) from Ultralytics' validator on the labelled held-back images."""
    task = info.task or "detect"
    images = labelled(held, task, info.names)
    if not images:
        raise OptionError(f"max_drop needs labels for the held-back images ({len(held)}): give {_LABELS_NEEDED}.")
    metric = CONTROL_METRIC[task]
    hw, batch = (int(shape[2]), int(shape[3])), int(shape[0])
    calls = tqdm(desc=f"yolo_adapters: accuracy control ({metric} on {len(images)} images)", unit="validation")
    values: list[float] = []

    def transform(index: int) -> np.ndarray:  # a validation item as model input (NNCF ranks layers with it)
        return np.stack([preprocess(images[index], hw, task, info.stride or 32)] * batch)

    def validate(compiled: Any, items: Iterable[int]) -> tuple[float, None]:
        chosen = [images[int(i)] for i in items]
        module = _compiled_adapter(compiled, info, fp32_xml)
        value = float(labelled_metrics(module, chosen, task, plan.imgsz)[metric])
        calls.update()
        values.append(value)
        return value, None

    arguments = quantize_arguments(nncf, fast=bool(settings.get("fast_bias_correction")))
    arguments["advanced_quantization_parameters"] = arguments.pop("advanced_parameters")
    max_drop = float(settings["max_drop"])
    try:
        quantized = nncf.quantize_with_accuracy_control(
            model,
            calibration_dataset=calibration,
            validation_dataset=nncf.Dataset(list(range(len(images))), transform),
            validation_fn=validate,
            max_drop=max_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            subset_size=int(calibration.get_length() or 1),
            ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
            **arguments,
        )
    finally:
        calls.close()
    control = {"max_drop": max_drop, "drop_type": "absolute", "metric": metric, "images": len(images),
               "validations": len(values), "fake_quantize_left": count_fake_quantize(quantized)}  # fmt: skip
    return quantized, control


class _CompiledEngine:
    """An ``openvino.CompiledModel`` someone else compiled (NNCF's validation), as a yolo_adapters Engine."""

    parallel = 1

    def __init__(self, compiled: Any) -> None:
        from ..backends.base import Engine

        Engine.__init__(self)  # type: ignore[arg-type] - the counter only
        self.compiled = compiled
        self._request = compiled.create_infer_request()
        self._outputs = len(compiled.outputs)
        partial = compiled.input(0).get_partial_shape()
        self.input_shape = tuple(int(d.get_length()) if d.is_static else -1 for d in partial)
        self.input_dtype = np.dtype(np.float32)

    dynamic = property(lambda self: any(int(d) < 0 for d in self.input_shape))

    def _count(self) -> None:
        self.calls += 1

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        self._count()
        self._request.infer({0: batch})
        return [self._request.get_output_tensor(i).data.copy() for i in range(self._outputs)]

    def submit(self, batch: np.ndarray) -> Any:
        from ..backends.base import Done

        return Done(self.infer(batch))


def _compiled_adapter(compiled: Any, info: Any, artifact: Path) -> Any:
    from ..runtime import AdapterBackend

    return AdapterBackend(_CompiledEngine(compiled), info, "openvino", "CPU", artifact, pipeline=False)  # type: ignore[arg-type]


def static_shape(model: Any, plan: "ExportPlan") -> tuple[int, int, int, int]:
    """The input shape calibration tensors must have: the IR's own where static, else batch x imgsz."""
    partial = model.input(0).get_partial_shape()
    fallback = (plan.batch, 3, *plan.imgsz)
    return tuple(int(d.get_length()) if d.is_static else int(f) for d, f in zip(partial, fallback))  # type: ignore[return-value]


def count_fake_quantize(model: Any) -> int:
    return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


# -- ONNX Runtime ---------------------------------------------------------------------------------------------
def quantize_onnx(fp32_onnx: Path, plan: "ExportPlan") -> Path:
    """Quantize the FP32 ONNX file at ``fp32_onnx`` with ``onnxruntime.quantization.quantize_static`` (QDQ) into
    ``model_int8.onnx`` beside it; returns its path. The report goes next to it; the FP32 file is removed."""
    require_quantizer("onnxruntime")
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    from ..runtime import read_artifact_info

    settings = plan_settings(plan)
    info = read_artifact_info(fp32_onnx)
    task = info.task or "detect"
    root, calib_images, held = _calibration_split(settings)

    model = onnx.load(str(fp32_onnx))
    if graph.name_nodes(model):  # an ignore list needs node names
        onnx.save(model, str(fp32_onnx))
    input_value = model.graph.input[0]
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in input_value.type.tensor_type.shape.dim]
    shape = tuple(int(d) if d > 0 else int(f) for d, f in zip(dims, (plan.batch, 3, *plan.imgsz)))
    batches = calibration_batches(calib_images, shape, task, info.stride or 32)
    scope = float_scope(model)
    ignored = sorted({name for names in scope.values() for name in names})
    LOGGER.info("yolo_adapters: INT8 calibration on %d images at %s; %d ops kept in float",
                len(calib_images), shape, len(ignored))  # fmt: skip

    bar = tqdm(total=len(batches), desc="yolo_adapters: INT8 calibration", unit="batch")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            tensor = next(self._items, None)
            if tensor is None:
                return None
            bar.update()
            return {input_value.name: tensor}

    int8_onnx = fp32_onnx.with_name(fp32_onnx.stem + "_int8.onnx")
    try:
        quantize_static(
            str(fp32_onnx),
            str(int8_onnx),
            Reader(),
            **onnx_quantize_arguments(QuantFormat, QuantType, CalibrationMethod),
            nodes_to_exclude=ignored,
        )
    except Exception as exc:
        raise ConversionError(f"ONNX Runtime could not quantize {fp32_onnx}: {type(exc).__name__}: {exc}") from exc
    finally:
        bar.close()
    quantized = onnx.load(str(int8_onnx))
    if not quantized.metadata_props:  # Ultralytics' metadata (task, names, stride...) lives in the ONNX file
        quantized.metadata_props.extend(model.metadata_props)
        onnx.save(quantized, str(int8_onnx))

    report = {
        "backend": "onnxruntime",
        "task": task,
        "precision": "int8",
        "artifact": int8_onnx.name,
        "input_shape": [int(v) for v in shape],
        "dynamic": plan.dynamic,
        "calibration": _calibration_section(settings, root, calib_images, held, len(batches)),
        "quantization": {
            "tool": f"onnxruntime {onnxruntime.__version__}",
            "preset": "qdq u8s8",
            "settings": {"format": "QDQ", "activations": "uint8 asymmetric", "weights": "int8 symmetric per-channel",
                         "calibration": "minmax"},  # fmt: skip
            "kept_in_float": graph.count_kinds(model, ignored),
            "kept_in_float_by_reason": {k: len(v) for k, v in scope.items()},
            "quantizers": sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node),
        },
        "accuracy_control": None,
    }
    _finish_report(report, fp32_onnx, int8_onnx, held, plan, task, info, "onnxruntime")
    write_report(int8_onnx.parent, report)
    fp32_onnx.unlink(missing_ok=True)
    return int8_onnx


def onnx_quantize_arguments(QuantFormat: Any, QuantType: Any, CalibrationMethod: Any) -> dict[str, Any]:  # noqa: N803
    """ONNX Runtime's counterpart of the NNCF MIXED preset: QDQ, symmetric per-channel int8 weights, asymmetric
    uint8 activations (U8S8, what its CPU kernels run fastest), min/max ranges; at most 16 batches of
    intermediate outputs held at once during calibration (same ranges, bounded memory)."""
    return {
        "quant_format": QuantFormat.QDQ,
        "per_channel": True,
        "activation_type": QuantType.QUInt8,
        "weight_type": QuantType.QInt8,
        "calibrate_method": CalibrationMethod.MinMax,
        "extra_options": {"ActivationSymmetric": False, "WeightSymmetric": True, "CalibMaxIntermediateOutputs": 16},
    }


# -- the report -------------------------------------------------------------------------------------------
def _finish_report(
    report: dict, fp32: Path, int8: Path, held: list[Path], plan: "ExportPlan", task: str, info: Any, backend: str
) -> None:
    """The agreement and (where the held-back images have labels) mAP sections of ``report``."""
    report["agreement"] = agreement_report(fp32, int8, held, plan, task, backend=backend) if held else None
    images = labelled(held, task, info.names)
    report["metrics"] = None
    if images:
        report["metrics"] = {"images": len(images), "validator": "ultralytics " + _ultralytics_version()}
        for path, precision in ((fp32, "fp32"), (int8, "int8")):
            report["metrics"][precision] = labelled_metrics(_adapter(path, plan, precision, backend), images, task, plan.imgsz)


def _ultralytics_version() -> str:
    import ultralytics

    return ultralytics.__version__


def _predictor(task: str, module: Any, imgsz: Sequence[int]) -> Any:
    """Ultralytics' own predictor for ``task``, running ``module`` (an AdapterBackend) with no AutoBackend."""
    from ultralytics.models import yolo

    classes = {
        "detect": yolo.detect.DetectionPredictor, "segment": yolo.segment.SegmentationPredictor,
        "pose": yolo.pose.PosePredictor, "obb": yolo.obb.OBBPredictor, "classify": yolo.classify.ClassificationPredictor,
    }  # fmt: skip
    predictor = classes[task](overrides={"imgsz": list(imgsz), "verbose": False, "save": False, "conf": 0.25})
    predictor.model = module
    predictor.device = module.device
    predictor.done_warmup = True
    return predictor


def _adapter(path: Path, plan: "ExportPlan", precision: str, backend: str = "openvino") -> Any:
    """The model at ``path`` as the AdapterBackend Ultralytics' predictor and validator run (CPU)."""
    from ..runtime import AdapterBackend, read_artifact_info

    options = {"precision": precision, "dynamic": plan.dynamic, "imgsz": list(plan.imgsz), "batch": plan.batch}
    if backend == "onnxruntime":
        from ..backends.onnxruntime import ONNXRuntimeBackend, ONNXRuntimeEngine

        engine: Any = ONNXRuntimeEngine(ONNXRuntimeBackend(), path, "cpu", options)
        device = "cpu"
    else:
        from ..backends.openvino import OpenVINOEngine

        engine, device = OpenVINOEngine(path, "CPU", {**options, "compile_cache": False}), "CPU"
    return AdapterBackend(engine, read_artifact_info(path), backend, device, path, pipeline=False)


def agreement_report(
    reference: Path, candidate: Path, images: Sequence[Path], plan: "ExportPlan", task: str, conf: float = 0.25,
    backend: str = "openvino",
) -> dict[str, Any]:  # fmt: skip
    """INT8 vs FP32 on ``images`` through Ultralytics' predictor: matched detections, IoU, keypoints, masks, top-1."""
    from ..convert import quiet_ultralytics
    from ..parity import _match, compare_results

    runs = []
    with quiet_ultralytics():
        for path, precision in ((reference, "fp32"), (candidate, "int8")):
            predictor = _predictor(task, _adapter(path, plan, precision, backend), plan.imgsz)
            runs.append([predictor(source=str(p), stream=False)[0] for p in images])
    return summarize_agreement(runs[0], runs[1], [p.name for p in images], conf, _match, compare_results)


def labelled_metrics(module: Any, images: Sequence[Path], task: str, imgsz: Sequence[int]) -> dict[str, float]:
    """The accuracy of ``module`` (an AdapterBackend) on labelled ``images``, by Ultralytics' own classes:

    detect/segment/pose/obb: the task's validator (``DetectionValidator``... on a temporary dataset listing
    exactly these images; labels are the YOLO files beside them), its ``metrics/...`` results (mAP50, mAP50-95
    per box/mask/pose); classify: the predictor's top-5 and ``ClassifyMetrics`` (top-1, top-5), the label being
    the class folder."""
    from ..convert import quiet_ultralytics

    with quiet_ultralytics():
        if task == "classify":
            return _classify_metrics(module, images, imgsz)
        return _validator_metrics(module, images, task, imgsz)


def _classify_metrics(module: Any, images: Sequence[Path], imgsz: Sequence[int]) -> dict[str, float]:
    import torch
    from ultralytics.utils.metrics import ClassifyMetrics

    predictor = _predictor("classify", module, imgsz)
    targets, top5 = [], []
    for image in images:
        target = class_of(image, module.names)
        if target is None:
            continue
        probs = predictor(source=str(image), stream=False)[0].probs
        targets.append(torch.tensor([target]))
        top5.append(torch.tensor([list(probs.top5)]))
    metrics = ClassifyMetrics()
    if targets:
        metrics.process(targets, top5)
    return {k: float(v) for k, v in metrics.results_dict.items() if k.startswith("metrics/")}


def _validator_metrics(module: Any, images: Sequence[Path], task: str, imgsz: Sequence[int]) -> dict[str, float]:
    from ultralytics.models import yolo

    from ..patching import install

    install()  # the patched AutoBackend hands the validator ``module`` itself (runtime.build_adapter_backend)
    classes = {"detect": yolo.detect.DetectionValidator, "segment": yolo.segment.SegmentationValidator,
               "pose": yolo.pose.PoseValidator, "obb": yolo.obb.OBBValidator}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="yolo_adapters_val_") as tmp:
        folder = Path(tmp)
        (folder / "images.txt").write_text("".join(f"{Path(p).resolve()}\n" for p in images))
        data: dict[str, Any] = {"path": str(folder), "train": "images.txt", "val": "images.txt",
                                "names": {int(k): str(v) for k, v in module.names.items()}}  # fmt: skip
        if task == "pose" and module.kpt_shape:
            data["kpt_shape"] = list(module.kpt_shape)
            data["flip_idx"] = list((module.metadata or {}).get("flip_idx") or range(int(module.kpt_shape[0])))
        (folder / "data.yaml").write_text(json.dumps(data))  # JSON is YAML
        args = {"task": task, "data": str(folder / "data.yaml"), "imgsz": max(int(v) for v in imgsz), "batch": 1, "workers": 0,
                "plots": False, "verbose": False, "save_json": False, "device": f"{module.backend_name}:{module.engine_device}", "rect": True, "mode": "val"}  # fmt: skip
        validator = classes[task](save_dir=folder / "val", args=args)
        stats = validator(model=module)
    return {k: float(v) for k, v in (stats or {}).items() if str(k).startswith("metrics/")}


def summarize_agreement(reference: list, candidate: list, names: list[str], conf: float, match: Any, compare: Any) -> dict:
    """Aggregate per-image ``parity.compare_results`` into one report section."""
    total = {"images": len(names), "reference_detections": 0, "candidate_detections": 0, "matched": 0,
             "confident_reference": 0, "confident_found": 0, "min_box_iou": None, "mean_box_iou": None,
             "max_score_diff": None, "mean_keypoint_px": None, "max_keypoint_px": None, "min_mask_iou": None,
             "top1_agreement": None, "max_prob_diff": None, "unmatched": []}  # fmt: skip
    ious: list[float] = []
    kpt_sum, kpt_n, top1 = 0.0, 0, []
    for ref, cand, name in zip(reference, candidate, names):
        agreement = compare(ref, cand, conf=conf)
        if agreement.task == "classify":
            top1.append(agreement.top1_agree)
            total["max_prob_diff"] = max(total["max_prob_diff"] or 0.0, agreement.max_prob_diff)
            continue
        total["reference_detections"] += agreement.reference
        total["candidate_detections"] += agreement.candidate
        total["matched"] += agreement.matched
        total["unmatched"] += [f"{name}: {u}" for u in agreement.unmatched]
        boxes_ref = ref.obb if agreement.task == "obb" else ref.boxes
        boxes_cand = cand.obb if agreement.task == "obb" else cand.boxes
        pairs = match(boxes_ref, boxes_cand, agreement.task)
        ious += [iou for _, _, iou in pairs]
        confident = [i for i in range(len(boxes_ref)) if float(boxes_ref.conf[i]) >= 0.5]
        found = {i for i, _, _ in pairs}
        total["confident_reference"] += len(confident)
        total["confident_found"] += sum(i in found for i in confident)
        if agreement.matched:
            total["max_score_diff"] = max(total["max_score_diff"] or 0.0, agreement.max_score_diff)
            if agreement.task == "pose":
                kpt_sum += agreement.mean_keypoint_px * agreement.matched
                kpt_n += agreement.matched
                total["max_keypoint_px"] = max(total["max_keypoint_px"] or 0.0, agreement.max_keypoint_px)
            if agreement.task == "segment":
                total["min_mask_iou"] = min(total["min_mask_iou"] or 1.0, agreement.min_mask_iou)
    if ious:
        total["min_box_iou"], total["mean_box_iou"] = min(ious), sum(ious) / len(ious)
    if kpt_n:
        total["mean_keypoint_px"] = kpt_sum / kpt_n
    if top1:
        total["top1_agreement"] = sum(top1) / len(top1)
    if total["confident_reference"]:
        total["confident_recall"] = total["confident_found"] / total["confident_reference"]
    return total


def write_report(folder: Path, report: Mapping[str, Any]) -> Path:
    path = folder / REPORT_FILE
    path.write_text(json.dumps(report, indent=1, default=str))
    return path


def read_report(artifact: str | Path) -> dict[str, Any] | None:
    """The quantization report saved beside an INT8 artifact (its folder or file), or None."""
    path = Path(artifact)
    folder = path if path.is_dir() else path.parent
    try:
        return json.loads((folder / REPORT_FILE).read_text())
    except (OSError, ValueError):
        return None


def format_report(report: Mapping[str, Any]) -> str:
    """A few human-readable lines (the CLI prints them after an INT8 conversion)."""
    cal, q, a = report.get("calibration", {}), report.get("quantization", {}), report.get("agreement")
    quantizers = q.get("quantizers", q.get("fake_quantize"))
    lines = [
        f"INT8 ({q.get('tool')}, preset {q.get('preset')}): {quantizers} quantizers; "
        f"kept in float: {', '.join(f'{k} x{v}' for k, v in (q.get('kept_in_float') or {}).items()) or 'nothing'}",
        f"calibration: {cal.get('images')} images from {cal.get('folder')} at input shape {report.get('input_shape')}",
    ]
    control = report.get("accuracy_control")
    if control:
        lines.append(f"accuracy control: {control['metric']} may drop by at most {control['max_drop']} "
                     f"({control['validations']} validations on {control['images']} labelled images; "
                     f"{control['fake_quantize_left']} quantizers left)")  # fmt: skip
    if not a:
        lines.append("agreement: no held-back images (holdout=0 or a one-image folder)")
    else:
        lines.append(f"INT8 vs FP32 on {a['images']} held-back images:")
        if a.get("top1_agreement") is not None:
            lines.append(f"  top-1 agreement {a['top1_agreement']:.1%}, max probability difference {a['max_prob_diff']:.4f}")
        else:
            lines.append(f"  detections FP32 {a['reference_detections']}, INT8 {a['candidate_detections']}, "
                         f"matched {a['matched']}; FP32 conf>=0.5 found: {a['confident_found']}/{a['confident_reference']}")  # fmt: skip
            for key, label in (("mean_box_iou", "mean box IoU"), ("min_box_iou", "min box IoU"),
                               ("max_score_diff", "max score difference"), ("mean_keypoint_px", "mean keypoint distance px"),
                               ("max_keypoint_px", "max keypoint distance px"), ("min_mask_iou", "min mask IoU")):  # fmt: skip
                if a.get(key) is not None:
                    lines.append(f"  {label}: {a[key]:.4f}")
    metrics = report.get("metrics")
    if metrics:
        lines.append(f"accuracy on {metrics['images']} labelled held-back images (Ultralytics' validator):")
        for key in metrics.get("fp32", {}):
            name = key.replace("metrics/", "")
            lines.append(f"  {name}: FP32 {metrics['fp32'][key]:.4f}, INT8 {metrics['int8'].get(key, float('nan')):.4f}")
    return "\n".join(lines)


# -- Python entry point -----------------------------------------------------------------------------------
@dataclass
class QuantizationResult:
    """What ``quantize_model`` returns: the cached INT8 artifact and its report (``quantization_report.json``)."""

    artifact: Path
    report: dict[str, Any] | None

    def __str__(self) -> str:
        return f"{self.artifact}\n{format_report(self.report) if self.report else '(no report)'}"


def quantize_model(model: Any, calibration: str | Path, backend: str = "openvino", **options: Any) -> QuantizationResult:
    """Convert ``model`` (a .pt path or an Ultralytics model) to INT8 for ``backend``, calibrated on the images
    in ``calibration``; cached like every conversion (the same call later returns at once).

    ``calibration`` is a folder of images, or a labelled YOLO dataset (a data.yaml, or a folder with images/ and
    labels/): with labels the report gets FP32 and INT8 mAP, and ``max_drop=0.01`` (openvino) quantizes under
    accuracy control. ``activate(backend, precision="int8", calibration=...)`` does the same on first use; this
    returns the report.
    """
    from .. import registry
    from ..errors import BackendUnavailableError as Unavailable
    from ..runtime import resolve_artifact

    plugin = registry.get_backend(backend)
    missing = plugin.missing_requirements()
    if missing:
        raise Unavailable(missing)
    if "int8" not in plugin.precisions:
        raise OptionError(f"The {plugin.name!r} backend has no INT8 conversion; precisions: {plugin.precisions}.")
    checked = plugin.validate_options({**options, "precision": "int8", "calibration": calibration})
    device = plugin.normalize_device(plugin.name, str(checked.get("device") or ""))
    plugin.check_device(device)
    from ultralytics.engine.model import Model

    if isinstance(model, Model):  # YOLO("x.pt"): convert the network it wraps
        model = model.ckpt_path or model.model
    artifact = resolve_artifact(model, plugin, device, checked)
    return QuantizationResult(artifact, read_report(artifact))
