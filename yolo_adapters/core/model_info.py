"""What the predictor needs to know about a model, read from Ultralytics' export metadata or the module."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yolo_adapters.errors import ModelFormatError

TASKS = ("detect", "segment", "semantic", "depth", "classify", "pose", "obb")
#: The task Ultralytics assumes when a model or its metadata names none.
DEFAULT_TASK = "detect"

#: Ultralytics' head class (export metadata ``head``) -> the model family it belongs to.
_HEAD_FAMILIES = {"RTDETRDecoder": "RT-DETR", "v10Detect": "YOLOv10", "WorldDetect": "YOLO-World"}


@dataclass
class ModelInfo:
    task: str
    names: dict[int, str]
    stride: int = 32
    imgsz: tuple[int, int] = (640, 640)
    batch: int = 1
    dynamic: bool = False
    kpt_shape: tuple[int, int] | None = None
    channels: int = 3
    end2end: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], source: str = "") -> ModelInfo:
        """From Ultralytics' export metadata (metadata.yaml, ONNX metadata_props)."""
        meta = {k: _literal(v) for k, v in meta.items()}
        if "names" not in meta or "task" not in meta:
            raise ModelFormatError(
                f"{source or 'model'}: no Ultralytics metadata (task, names). Re-export it with "
                "`yolo export` or pass the .pt so yolo_adapters converts it."
            )
        imgsz = meta.get("imgsz", (640, 640))
        imgsz = (int(imgsz), int(imgsz)) if isinstance(imgsz, (int, float)) else tuple(int(x) for x in imgsz)
        args = meta.get("args") or {}
        kpt = meta.get("kpt_shape")
        return cls(
            task=str(meta["task"]),
            names={int(k): str(v) for k, v in dict(meta["names"]).items()},
            stride=int(meta.get("stride", 32)),
            imgsz=imgsz,
            batch=int(meta.get("batch", 1)),
            dynamic=bool(meta.get("dynamic", args.get("dynamic", False) if isinstance(args, dict) else False)),
            kpt_shape=tuple(int(x) for x in kpt) if kpt else None,  # type: ignore[arg-type]
            channels=int(meta.get("channels", 3)),
            end2end=bool(meta.get("end2end", False)),
            metadata=meta,
        )

    @property
    def head(self) -> str:
        """Ultralytics' head class as the export metadata names it ("Detect", "RTDETRDecoder", ...); "" if unknown."""
        return str(self.metadata.get("head") or "")

    @property
    def family(self) -> str:
        """The model family for messages: "YOLO26n-seg", "rtdetr-l", ... from the export's description, else the head."""
        import re

        found = re.match(r"Ultralytics (\S+) model", str(self.metadata.get("description") or ""))
        if found:
            return found.group(1)
        return _HEAD_FAMILIES.get(self.head, f"{self.head or 'Ultralytics'} ({self.task})")

    @property
    def rtdetr(self) -> bool:
        """An RT-DETR head: named in the metadata, or (exports before Ultralytics 8.4 name no head class) by the
        model name Ultralytics writes into the description ("Ultralytics rtdetr-l model ...")."""
        if self.head:
            return self.head == "RTDETRDecoder"
        return self.family.lower().startswith("rtdetr")

    def layout_problem(self, shapes: list[tuple[int, ...]]) -> str | None:
        """What is wrong with an engine's output shapes (in the order the predictor reads them) for this model,
        or None when they are the layout Ultralytics' post-processing expects for its task and head.

        Knows YOLO heads with NMS outside the graph (``(B, 4 + nc + extra, anchors)``), end-to-end heads (YOLO26 and
        YOLOv10 exported NMS-free: ``(B, max_det, 6 + extra)``), RT-DETR (``(B, queries, 6)``, older releases ``(B, queries, 4 + nc)``), classifiers
        (``(B, nc)``), semantic masks (``(B, H, W)`` class map or ``(B, nc, H, W)`` logits) and depth maps
        (``(B, 1, H, W)`` or ``(B, H, W)``).
        """
        if not shapes:
            return "it has no outputs"
        nc, first = len(self.names), shapes[0]
        extra = 0
        if self.task == "segment":
            if len(shapes) < 2 or len(shapes[1]) != 4:
                return "a segment model needs detections and a (B, masks, H, W) prototype output"
            extra = shapes[1][1]
        elif self.task == "pose":
            if not self.kpt_shape:
                return "the metadata has no kpt_shape"
            extra = self.kpt_shape[0] * self.kpt_shape[1]
        elif self.task == "obb":
            extra = 1
        if self.task == "classify":
            return None if len(first) == 2 and first[1] == nc else f"a classifier outputs (B, {nc})"
        if self.task == "semantic":
            if len(first) == 3 or (len(first) == 4 and first[1] == max(nc, 1)):
                return None
            return f"a semantic model outputs a (B, H, W) class map or (B, {nc}, H, W) logits"
        if self.task == "depth":
            if len(first) == 3 or (len(first) == 4 and first[1] == 1):
                return None
            return "a depth model outputs a (B, 1, H, W) or (B, H, W) depth map"
        if self.task not in ("detect", "segment", "pose", "obb"):
            return None  # a task this version does not know: let Ultralytics' post-processing decide
        if len(first) != 3:
            return f"a {self.task} model outputs one (B, rows, columns) detection tensor first"
        if self.rtdetr:  # Ultralytics >= 8.4 selects the top queries in the graph: box, score, class
            if first[2] in (6, 4 + nc):
                return None
            return (
                "an RT-DETR head outputs (B, queries, 6) (box, score, class) or, before Ultralytics 8.4, "
                f"(B, queries, {4 + nc}) (4 box values + {nc} classes)"
            )
        if self.end2end:
            want = 6 + extra
            if first[2] == want:
                return None
            also = f", {extra} more" if extra else ""
            return f"an end-to-end (NMS-free) {self.task} head outputs (B, max_det, {want}) (box, score, class{also})"
        want = 4 + nc + extra
        if first[1] == want:
            return None
        more = f" + {extra} more" if extra else ""
        return (
            f"a {self.task} head with NMS outside the graph outputs (B, {want}, anchors) "
            f"(4 box values + {nc} classes{more})"
        )


def _literal(value: Any) -> Any:
    """ONNX metadata stores Python literals as strings ("{0: 'person'}", "[17, 3]")."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def read_metadata_yaml(folder: Path) -> dict[str, Any]:
    """metadata.yaml written by Ultralytics next to an exported model; {} when absent."""
    import yaml

    path = folder / "metadata.yaml"
    if not path.is_file():
        return {}
    try:
        return yaml.safe_load(path.read_text()) or {}
    except Exception:
        # Ultralytics writes names with Python tags in some versions; fall back to the full loader it uses.
        return yaml.load(path.read_text(), Loader=yaml.FullLoader) or {}


def read_onnx_metadata(path: Path) -> dict[str, Any]:
    """The custom metadata Ultralytics stores in an ONNX file."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return {p.key: p.value for p in model.metadata_props}
    except ImportError:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)
    except Exception as exc:
        raise ModelFormatError(f"{path} is not a readable ONNX model ({exc}); re-export it or delete it.") from exc


def onnx_metadata(path: Path) -> dict[str, Any]:
    """Ultralytics' metadata of an ONNX export as values (ONNX stores them as strings)."""
    return {k: _literal(v) for k, v in read_onnx_metadata(path).items()}


def write_metadata_yaml(folder: Path, meta: Mapping[str, Any]) -> Path:
    """metadata.yaml as Ultralytics writes it beside an exported model, for a model converted another way."""
    import yaml

    path = folder / "metadata.yaml"
    path.write_text(yaml.safe_dump(dict(meta), sort_keys=False))
    return path


def read_artifact_info(artifact: Path) -> ModelInfo:
    """Ultralytics metadata stored with an artifact: metadata.yaml beside it, or inside the ONNX file."""
    folder = artifact if artifact.is_dir() else artifact.parent
    meta = read_metadata_yaml(folder)
    if not meta and artifact.suffix == ".onnx":
        meta = read_onnx_metadata(artifact)
    return ModelInfo.from_metadata(meta, str(artifact))


def info_from_module(model: Any) -> ModelInfo:
    """From a loaded Ultralytics nn.Module (used only to size a conversion; the artifact's metadata wins)."""
    names = getattr(model, "names", None) or {}
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    yaml_cfg = getattr(model, "yaml", {}) or {}
    kpt = yaml_cfg.get("kpt_shape") or getattr(model, "kpt_shape", None)
    args = getattr(model, "args", {}) or {}
    imgsz = args.get("imgsz", 640) if isinstance(args, dict) else 640
    imgsz = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    stride = getattr(model, "stride", 32)
    stride = int(max(stride)) if hasattr(stride, "__iter__") else int(stride)
    return ModelInfo(
        task=str(getattr(model, "task", None) or _guess_task(model)),
        names={int(k): str(v) for k, v in names.items()},
        stride=stride,
        imgsz=imgsz,
        kpt_shape=tuple(kpt) if kpt else None,
        channels=int(yaml_cfg.get("channels", 3)),
    )


def task_of(source: Any) -> str:
    """The task of a ModelInfo, an Ultralytics model or anything with ``.task``: ``DEFAULT_TASK`` when unset."""
    return str(getattr(source, "task", None) or DEFAULT_TASK)


def _guess_task(model: Any) -> str:
    from ultralytics.nn.tasks import guess_model_task

    return guess_model_task(model)
