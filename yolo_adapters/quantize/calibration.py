"""The calibration data: which images, split how, labelled or not, and as what tensors.

Both quantizers (NNCF and ONNX Runtime) and the cache key (``int8_plan``) read the same folder or data.yaml the
same way; this module is that one reading. It imports nothing heavy at import time (Ultralytics and OpenCV only
inside the functions that need them).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from yolo_adapters.core.images import IMAGE_SUFFIXES
from yolo_adapters.errors import OptionError
from yolo_adapters.quantize import graph

LOGGER = logging.getLogger(__name__)

DEFAULT_CALIBRATION_SIZE = 300
LABELS_NEEDED = (
    "a labelled dataset: a YOLO data.yaml, or a folder with images/ and labels/ in YOLO format (labels/NAME.txt "
    "for images/NAME.jpg); for classify, images in one folder per class named like the model's classes"
)


# -- finding the images ----------------------------------------------------------------------------------
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


# -- tensors ---------------------------------------------------------------------------------------------
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

    boxed = LetterBox(new_shape=(int(hw[0]), int(hw[1])), auto=False, stride=stride)(image=bgr)
    if not isinstance(boxed, np.ndarray):  # given an image and no labels, LetterBox returns the image
        raise TypeError(f"LetterBox returned {type(boxed).__name__} for an image, not an array")
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


def static_shape(declared: Sequence[int], plan: Any) -> tuple[int, int, int, int]:
    """The input shape calibration and timing tensors have: the model's own (``declared``, -1 where dynamic)
    where static, else the plan's batch x 3 x imgsz."""
    fallback = (plan.batch, 3, *plan.imgsz)
    n, c, h, w = (int(d) if int(d) > 0 else int(f) for d, f in zip(declared, fallback))
    return n, c, h, w


# -- what both quantizers start from ---------------------------------------------------------------------
def calibration_split(settings: Mapping[str, Any]) -> tuple[Path, list[Path], list[Path]]:
    """(root, calibration images, held-back images) of a plan's settings (``plan_settings``)."""
    source = settings["calibration"]
    calib, held = split_holdout(find_images(source), settings.get("holdout"))
    return data_root(source), calib[: settings.get("size") or DEFAULT_CALIBRATION_SIZE], held


def calibration_inputs(
    model: Any,
    images: Sequence[Path],
    shape: Sequence[int],
    task: str,
    stride: int,
    keypoint_channels: int | None = None,
) -> tuple[list[np.ndarray], dict[str, list[str]], list[str]]:
    """What a quantizer is handed, for either graph format (OpenVINO model or ONNX proto): the calibration batches
    at ``shape``, the ops kept in float by reason (``graph.float_scope``, with the keypoint branch where
    ``keypoint_channels`` is given) and their names as one sorted ignore list."""
    batches = calibration_batches(images, shape, task, stride)
    scope = graph.float_scope(model, keypoint_channels)
    ignored = sorted({name for names in scope.values() for name in names})
    LOGGER.info("INT8 calibration on %d images at %s; %d ops kept in float", len(images), shape, len(ignored))
    return batches, scope, ignored


def calibration_section(settings: Mapping[str, Any], root: Path, calib: list, held: list, batches: int) -> dict:
    """The report's ``calibration`` section."""
    return {
        "folder": str(settings["calibration"]),
        "digest": settings.get("data"),
        "images": len(calib),
        "batches": batches,
        "held_back": [_relative(p, root) for p in held],
    }
