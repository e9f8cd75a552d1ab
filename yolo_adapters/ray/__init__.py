"""Batch inference over datasets on Ray Data: one engine per actor, converted once on the driver.

    import yolo_adapters.ray as yar

    ds = yar.predict("images/", "yolo11n-pose.pt", device="openvino", conf=0.25)
    ds.write_parquet("out/")                      # one row per image (see docs/ray.md for the columns)

    # the idiomatic Ray form, on a dataset of your own (read_images gives RGB; the actor converts)
    ds = ray.data.read_images("s3://bucket/images", include_paths=True)
    ds = ds.map_batches(yar.Predictor, fn_constructor_kwargs={"engine": yar.prepare("yolo11n.pt", "openvino")},
                        compute=ray.data.ActorPoolStrategy(size=4), num_cpus=1, batch_size=8)

This subpackage is the only part of yolo_adapters that imports ray (pip install "yolo-adapters[ray]").
"""

from __future__ import annotations

import glob
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ray

from yolo_adapters.ray import _sizing
from yolo_adapters.ray._encode import (
    COLUMNS,
    decode_depth,
    decode_mask,
    decode_masks,
    decode_semantic,
    encode_mask,
    read_metadata,
    schema,
    to_results,
)
from yolo_adapters.ray._predictor import (
    Predictor,
    accelerator_device,
    accelerator_request,
    prepare,
    read_image,
    thread_options,
    threads_for,
)
from yolo_adapters.ray._sizing import Node, PoolFitError, plan_pool, upstream_of
from yolo_adapters.ray._watchdog import StallError, check_stall_timeout, with_stall_timeout

__all__ = [
    "COLUMNS",
    "PoolFitError",
    "Predictor",
    "StallError",
    "accelerator_device",
    "accelerator_request",
    "decode_depth",
    "decode_mask",
    "decode_masks",
    "decode_semantic",
    "encode_mask",
    "list_images",
    "predict",
    "prepare",
    "read_image",
    "read_metadata",
    "schema",
    "thread_options",
    "threads_for",
    "to_results",
    "with_stall_timeout",
]

LOGGER = logging.getLogger(__name__)

#: Suffixes taken from a folder or a glob (Ultralytics' image formats).
IMAGE_SUFFIXES = (
    ".bmp",
    ".dng",
    ".jpeg",
    ".jpg",
    ".mpo",
    ".png",
    ".tif",
    ".tiff",
    ".webp",
    ".pfm",
    ".heic",
    ".jp2",
    ".avif",
)


def predict(
    source: Any,
    model: Any,
    *,
    device: str = "openvino",
    batch_size: int = 8,
    concurrency: int | tuple[int, int] | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    resources: Mapping[str, float] | None = None,
    options: Mapping[str, Any] | None = None,
    image_column: str = "image",
    channels: str = "RGB",
    fail_fast: bool = False,
    threads: int | None = None,
    ship_model: bool | str = "auto",
    ray_remote_args: Mapping[str, Any] | None = None,
    stall_timeout: float | None = 600.0,
    check_fit: bool = True,
    **predict_args: Any,
) -> ray.data.Dataset:
    """Run ``model`` over every image of ``source`` on Ray actors; one output row per image (lazy Dataset).

    ``source``: a folder, a glob, an image path or URI, a list of them (local, or s3:// gs:// ... read through
    pyarrow filesystems), or a ``ray.data.Dataset`` with an ``image_column`` (HWC uint8; RGB as
    ``read_images`` gives it, ``channels="BGR"`` for OpenCV arrays; or encoded bytes as ``read_binary_files``
    gives them) and an optional ``path`` column.
    ``model``: a .pt (converted here, once, before any actor starts; conversion errors are raised here) or an
    engine model (OpenVINO IR, .onnx, .om). ``device``: "openvino", "openvino:GPU", "onnxruntime:cuda",
    "ascend"... ``options``: the backend's options (docs/options.md). Other keyword arguments go to
    Ultralytics' ``predict`` in each actor (conf, iou, imgsz, classes, max_det, retina_masks...).
    ``num_cpus`` per actor (default 1, or 0.5 beside an accelerator) also sizes the engine's threads (OpenVINO
    ``INFERENCE_NUM_THREADS``, ONNX Runtime intra-op threads) unless ``threads`` is given; ``concurrency``
    defaults to the cluster's CPUs divided by ``num_cpus`` (one CPU left for reads when ``source`` is a
    Dataset). The pool always fits beside the Dataset's upstream tasks: with ``num_cpus`` unset each actor's
    CPUs are lowered until it does; numbers of the caller's that cannot fit raise PoolFitError here, before
    any actor starts (``check_fit=False`` for a cluster that adds nodes on demand). Consuming the Dataset
    raises StallError once the job makes no progress for ``stall_timeout`` seconds (None: no watchdog).
    ``fail_fast`` raises on the first unreadable image instead of writing an ``error`` row.
    """
    if fail_fast not in (True, False):
        raise TypeError("fail_fast must be True or False")
    if check_fit not in (True, False):
        raise TypeError("check_fit must be True or False")
    check_stall_timeout(stall_timeout)  # before the conversion, which can take minutes
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True)
    engine = prepare(model, device, options=options, ship_model=ship_model, imgsz=predict_args.get("imgsz"))
    if num_gpus is None and resources is None:
        num_gpus, resources = accelerator_request(engine["backend"], engine["device"], ray.cluster_resources())
        resources = resources or None

    accelerated = bool(num_gpus) or bool(resources)
    is_dataset = isinstance(source, ray.data.Dataset)
    upstream = upstream_of(source) if is_dataset else None
    plan = plan_pool(
        cluster_nodes(),
        concurrency=concurrency,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        resources=resources,
        default_cpus=0.5 if accelerated else 1.0,
        upstream=upstream or _sizing.Upstream(),
        default_reserve=max(upstream.cpus, 1.0) if upstream else 0.0,  # the default pool leaves a CPU for reads
        check=check_fit,
    )
    LOGGER.info("%s", plan.note)
    if is_dataset:
        ds = source
    else:
        paths = list_images(source)
        if not paths:
            raise FileNotFoundError(f"No images found in {source!r}.")
        blocks = max(1, min(math.ceil(len(paths) / max(batch_size, 1)), 4096))
        ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=blocks)

    remote = dict(ray_remote_args or {})
    if plan.resources:
        remote["resources"] = dict(plan.resources)
    mapped = ds.map_batches(
        Predictor,
        fn_constructor_kwargs={
            "engine": engine,
            "image_column": image_column,
            "channels": channels,
            "fail_fast": fail_fast,
            "threads": threads,
            "predict_args": predict_args,
        },
        batch_size=batch_size,
        batch_format="numpy",
        compute=actor_pool(plan.concurrency),
        num_cpus=plan.num_cpus,
        num_gpus=plan.num_gpus,
        **remote,
    )
    return with_stall_timeout(mapped, stall_timeout)


def cluster_nodes() -> list[Node]:
    """The alive nodes of the Ray this process is connected to, with their resources."""
    return [Node.from_ray(node.get("Resources", {})) for node in ray.nodes() if node.get("Alive")]


def actor_pool(concurrency: int | Sequence[int]) -> ray.data.ActorPoolStrategy:
    """``concurrency`` as Ray Data's actor pool: N actors, or (min, max[, initial]) for an autoscaling pool
    (map_batches' own ``concurrency=`` argument is deprecated since Ray 2.51)."""
    if isinstance(concurrency, int):
        return ray.data.ActorPoolStrategy(size=concurrency)
    sizes = [int(v) for v in concurrency]
    if len(sizes) not in (2, 3):
        raise ValueError(f"concurrency={concurrency!r}: give N actors, or (min, max) or (min, max, initial)")
    return ray.data.ActorPoolStrategy(
        min_size=sizes[0], max_size=sizes[1], initial_size=sizes[2] if len(sizes) == 3 else None
    )


def default_concurrency(
    num_cpus: float,
    *,
    reserve: float = 0.0,
    num_gpus: float | None = None,
    resources: Mapping[str, float] | None = None,
) -> int:
    """How many actors fit in the cluster: its CPUs (less ``reserve`` for read tasks) over ``num_cpus``, and
    no more than its GPUs or custom resources allow."""
    total = ray.cluster_resources()
    fits = [int(max(total.get("CPU", 1.0) - reserve, num_cpus) // max(num_cpus, 1e-6))]
    if num_gpus:
        fits.append(int(total.get("GPU", 0.0) // num_gpus))
    for name, amount in (resources or {}).items():
        if amount:
            fits.append(int(total.get(name, 0.0) // amount))
    return max(1, min(fits))


def list_images(source: Any) -> list[str]:
    """Image paths or URIs in ``source`` (a folder, glob, file or URI, or a list of them), sorted per entry."""
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    found: list[str] = []
    for entry in source:
        text = str(entry)
        if "://" in text and not text.startswith("file://"):
            found.extend(_list_uri(text))
            continue
        text = text[len("file://") :] if text.startswith("file://") else text
        path = Path(text).expanduser()
        if path.is_dir():
            found.extend(str(p) for p in sorted(path.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif any(c in text for c in "*?["):
            found.extend(
                p for p in sorted(glob.glob(str(path), recursive=True)) if Path(p).suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            found.append(str(path))  # a file (a missing one gives an error row, not a failed job)
    return found


def _list_uri(uri: str) -> list[str]:
    import pyarrow.fs as pafs

    fs, inner = pafs.FileSystem.from_uri(uri)
    scheme = uri.split("://", 1)[0]
    info = fs.get_file_info(inner)
    if info.type == pafs.FileType.Directory:
        infos = fs.get_file_info(pafs.FileSelector(inner, recursive=True))
        return sorted(
            f"{scheme}://{i.path}"
            for i in infos
            if i.type == pafs.FileType.File and Path(i.path).suffix.lower() in IMAGE_SUFFIXES
        )
    return [uri]
