"""One Ultralytics ``Results`` -> one Arrow row, and back.

Every row has the same columns whatever the task (null where a task has no such output), so datasets from
different models concatenate and ``write_parquet`` always writes one schema:

=============  ==============================================  ==============================================
column         Arrow type                                      content
=============  ==============================================  ==============================================
path           string                                          the image's path or URI (null when unknown)
orig_shape     list<int32>                                     [height, width] of the image
boxes          list<fixed_size_list<float32, 6>>               x1, y1, x2, y2, conf, cls in image pixels
keypoints      list<list<fixed_size_list<float32, 3>>>         N x K x (x, y, visibility); visibility 1.0 when
                                                               the model predicts none
masks          list<list<int32>>                               one COCO-style uncompressed RLE per instance:
                                                               run lengths over the column-major (Fortran)
                                                               flattened orig_shape mask, starting with a run
                                                               of zeros (``decode_mask``)
probs          struct<top5: list<int32>, top5_conf:            classifiers: the five best classes and scores
               list<float32>>
obb            list<fixed_size_list<float32, 7>>               cx, cy, w, h, angle (radians), conf, cls
semantic       binary                                          lossless PNG of the class-id map (uint8, uint16
                                                               over 255 classes) (``decode_semantic``)
depth          binary                                          ``.npy`` bytes of the float16 depth map
                                                               (``decode_depth``)
engine         string                                          "openvino:CPU", "onnxruntime:cuda:0"...
error          string                                          null, or why this image has no results
=============  ==============================================  ==============================================

Class names go in the schema metadata (key ``yolo_adapters``: JSON with ``names``, ``task``, ``engine``,
``model``); ``read_metadata`` reads them back from a dataset, a schema or a Parquet folder.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

METADATA_KEY = b"yolo_adapters"

COLUMNS = (
    "path",
    "orig_shape",
    "boxes",
    "keypoints",
    "masks",
    "probs",
    "obb",
    "semantic",
    "depth",
    "engine",
    "error",
)


def schema(meta: Mapping[str, Any] | None = None) -> Any:
    """The Arrow schema of every output row (with ``meta`` as its yolo_adapters metadata)."""
    import pyarrow as pa

    f32 = pa.float32()
    fields = [
        pa.field("path", pa.string()),
        pa.field("orig_shape", pa.list_(pa.int32())),
        pa.field("boxes", pa.list_(pa.list_(f32, 6))),
        pa.field("keypoints", pa.list_(pa.list_(pa.list_(f32, 3)))),
        pa.field("masks", pa.list_(pa.list_(pa.int32()))),
        pa.field("probs", pa.struct([("top5", pa.list_(pa.int32())), ("top5_conf", pa.list_(f32))])),
        pa.field("obb", pa.list_(pa.list_(f32, 7))),
        pa.field("semantic", pa.binary()),
        pa.field("depth", pa.binary()),
        pa.field("engine", pa.string()),
        pa.field("error", pa.string()),
    ]
    metadata = {METADATA_KEY: json.dumps(dict(meta), sort_keys=True).encode()} if meta else None
    return pa.schema(fields, metadata=metadata)


def to_table(rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any] | None = None) -> Any:
    import pyarrow as pa

    sch = schema(meta)
    columns = {name: [row.get(name) for row in rows] for name in COLUMNS}
    return pa.Table.from_pydict(columns, schema=sch)


# -- masks ------------------------------------------------------------------------------------------
def encode_mask(mask: np.ndarray) -> list[int]:
    """COCO-style uncompressed RLE of a 2D boolean mask: run lengths over its column-major flattening, the
    first run counting zeros (0 when the mask starts with a one). pycocotools reads it as
    ``{"size": [h, w], "counts": counts}`` after ``frPyObjects``."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).astype(np.int64)
    counts = runs.tolist()
    if flat[0]:
        counts.insert(0, 0)
    return counts


def decode_mask(counts: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """The (height, width) boolean mask from ``encode_mask``'s counts."""
    h, w = int(shape[0]), int(shape[1])
    values = np.arange(len(counts)) % 2 == 1  # runs alternate 0, 1, 0, ... starting with zeros
    flat = np.repeat(values, np.asarray(counts, dtype=np.int64))
    if flat.size != h * w:
        raise ValueError(f"RLE counts cover {flat.size} pixels, not {h}x{w}")
    return flat.reshape((h, w), order="F")


def decode_masks(row: Mapping[str, Any]) -> np.ndarray:
    """All instance masks of one output row as an (N, height, width) boolean array."""
    h, w = (int(v) for v in row["orig_shape"])
    masks = row.get("masks")
    if masks is None or len(masks) == 0:
        return np.zeros((0, h, w), dtype=bool)
    return np.stack([decode_mask(m, (h, w)) for m in masks])


# -- semantic and depth -----------------------------------------------------------------------------
def encode_semantic(classes: np.ndarray) -> bytes:
    import cv2

    arr = np.asarray(classes)
    arr = arr.astype(np.uint8 if arr.max(initial=0) < 256 else np.uint16)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise ValueError("could not PNG-encode the semantic map")
    return buf.tobytes()


def decode_semantic(data: bytes) -> np.ndarray:
    """The (height, width) class-id map of a ``semantic`` cell."""
    import cv2

    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise ValueError("not a PNG-encoded semantic map")
    return np.asarray(decoded)


def encode_depth(depth: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, np.asarray(depth, dtype=np.float16), allow_pickle=False)
    return out.getvalue()


def decode_depth(data: bytes) -> np.ndarray:
    """The (height, width) float16 depth map of a ``depth`` cell."""
    return np.load(io.BytesIO(data), allow_pickle=False)


# -- Results -> row ---------------------------------------------------------------------------------
def _np(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().float().numpy() if hasattr(tensor, "detach") else np.asarray(tensor, np.float32)


def encode_result(result: Any, path: str | None, engine: str) -> dict[str, Any]:
    """One Ultralytics ``Results`` as a row dict (see the module docstring for the layout)."""
    h, w = (int(v) for v in result.orig_shape)
    row: dict[str, Any] = {"path": path, "orig_shape": [h, w], "engine": engine, "error": None}
    boxes = getattr(result, "boxes", None)
    row["boxes"] = _np(boxes.data).reshape(-1, 6).tolist() if boxes is not None else []
    kpts = getattr(result, "keypoints", None)
    if kpts is not None:
        data = _np(kpts.data)
        if data.ndim == 3 and data.shape[-1] == 2:
            data = np.concatenate([data, np.ones((*data.shape[:2], 1), np.float32)], axis=-1)
        row["keypoints"] = data.tolist()
    masks = getattr(result, "masks", None)
    if masks is not None:
        row["masks"] = [encode_mask(m) for m in _image_masks(masks.data, (h, w))]
    probs = getattr(result, "probs", None)
    if probs is not None:
        p = _np(probs.data).ravel()
        top = np.argsort(-p, kind="stable")[:5]
        row["probs"] = {"top5": [int(i) for i in top], "top5_conf": [float(p[i]) for i in top]}
    obb = getattr(result, "obb", None)
    if obb is not None:
        row["obb"] = _np(obb.data).reshape(-1, 7).tolist()
    semantic = getattr(result, "semantic_mask", None)
    if semantic is not None:
        row["semantic"] = encode_semantic(
            semantic.data.cpu().numpy() if hasattr(semantic.data, "cpu") else semantic.data
        )
    depth = getattr(result, "depth", None)
    if depth is not None:
        row["depth"] = encode_depth(_np(depth.data))
    return row


def _image_masks(data: Any, shape: tuple[int, int]) -> np.ndarray:
    """Instance masks in image pixels: Ultralytics keeps them at inference size unless retina_masks=True."""
    import torch

    if data.shape[0] == 0:
        return np.zeros((0, *shape), dtype=bool)
    if tuple(data.shape[1:]) != shape:
        from ultralytics.utils import ops

        data = ops.scale_masks(data[None].float(), shape)[0]
    return (data > 0.5).cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data) > 0.5


def error_row(path: str | None, engine: str, message: str, shape: Sequence[int] | None = None) -> dict[str, Any]:
    return {"path": path, "orig_shape": list(shape) if shape is not None else None, "engine": engine, "error": message}


# -- row -> Results ---------------------------------------------------------------------------------
def to_results(row: Mapping[str, Any], names: Mapping[int, str] | Sequence[str] | None = None) -> Any:
    """An Ultralytics ``Results`` rebuilt from one output row (to plot, or to compare with ``parity``).

    ``names`` defaults to class ids as strings; pass ``read_metadata(...)["names"]``. The image itself is not
    stored: ``orig_img`` is black. Classifiers get a probability vector holding only the top-5 scores."""
    import torch
    from ultralytics.engine.results import Results

    if row.get("error"):
        raise ValueError(f"row for {row.get('path')} has no results: {row['error']}")
    h, w = (int(v) for v in row["orig_shape"])
    if names is None:
        names = {}
    names = {int(k): v for k, v in (names.items() if isinstance(names, Mapping) else enumerate(names))}

    def tensor(value: Any, width: int) -> torch.Tensor:
        arr = np.asarray(
            [list(v) for v in value] if value is not None and len(value) else np.zeros((0, width)), np.float32
        )
        return torch.from_numpy(arr.reshape(-1, width))

    kwargs: dict[str, Any] = {}
    if row.get("obb") is not None:
        kwargs["obb"] = tensor(row["obb"], 7)
    else:
        kwargs["boxes"] = tensor(row.get("boxes"), 6)
    if row.get("keypoints") is not None:
        kp = [np.asarray([list(p) for p in inst], np.float32) for inst in row["keypoints"]]
        kwargs["keypoints"] = torch.from_numpy(np.stack(kp)) if kp else torch.zeros((0, 0, 3))
    if row.get("masks") is not None:
        kwargs["masks"] = torch.from_numpy(decode_masks(row).astype(np.float32))
    if row.get("probs") is not None:
        top5, conf = row["probs"]["top5"], row["probs"]["top5_conf"]
        p = torch.zeros(max(len(names), max(top5, default=0) + 1))
        p[list(top5)] = torch.tensor(list(conf), dtype=torch.float32)
        kwargs = {"probs": p}
    if row.get("semantic") is not None:
        kwargs["semantic_mask"] = torch.from_numpy(decode_semantic(row["semantic"]).astype(np.int64))
    if row.get("depth") is not None:
        kwargs["depth"] = torch.from_numpy(decode_depth(row["depth"]).astype(np.float32))
    return Results(np.zeros((h, w, 3), np.uint8), path=row.get("path") or "", names=names, **kwargs)


def read_metadata(source: Any) -> dict[str, Any]:
    """The yolo_adapters metadata (names, task, engine, model) of a dataset, an Arrow schema, a Parquet file or
    a folder written by ``write_parquet``. Class-name keys come back as ints. A lazy dataset runs to find its
    schema: pass a materialized one (``ds.materialize()``) or the Parquet output."""
    import pyarrow as pa

    if isinstance(source, pa.Schema):
        sch = source
    elif hasattr(source, "schema") and callable(source.schema):  # a ray.data.Dataset
        sch = source.schema().base_schema
    else:
        import pyarrow.dataset as pds

        sch = pds.dataset(str(source), format="parquet").schema
    raw = (sch.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError("no yolo_adapters metadata in this schema (was it written by yolo_adapters.ray.predict?)")
    meta = json.loads(raw)
    if isinstance(meta.get("names"), dict):
        meta["names"] = {int(k): v for k, v in meta["names"].items()}
    return meta
