"""The driver side (``prepare``: convert once, describe the engine) and the actor side (``Predictor``)."""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolo_adapters.ray import _encode

if TYPE_CHECKING:
    from yolo_adapters.backends.base import BackendPlugin

LOGGER = logging.getLogger(__name__)

#: Predict arguments the actor sets itself.
_RESERVED = ("source", "stream", "device", "model", "save", "show")


# -- device strings and the engine's Ray hooks --------------------------------------------------------------
def parse_device(device: str) -> tuple[BackendPlugin, str]:
    """``"openvino"`` -> (the openvino plugin, "CPU"); ``"onnxruntime:cuda:1"`` -> (plugin, "cuda:1"): the registry's
    one ``backend[:device]`` parser; UnknownBackendError for a name no plugin claims."""
    from yolo_adapters.core.registry import resolve_spec

    resolved = resolve_spec(str(device), require_installed=False)
    return resolved.plugin, resolved.device


def _plugin(backend: str | BackendPlugin) -> BackendPlugin:
    from yolo_adapters.core.registry import get_backend

    return get_backend(backend) if isinstance(backend, str) else backend


def accelerator_device(
    backend: str | BackendPlugin, device: str, assigned: Mapping[str, Sequence[Any]], env: Mapping[str, str]
) -> str:
    """The engine device an actor opens, given the accelerator ids Ray assigned to it.

    Ray hides the other cards from an actor (``CUDA_VISIBLE_DEVICES``, ``ASCEND_RT_VISIBLE_DEVICES``), so its
    cards are numbered from 0 inside the actor: ``ascend`` with ``resources={"NPU": 2}`` opens "0,1" whatever
    physical cards Ray picked, and ``onnxruntime:cuda`` with ``num_gpus=1`` opens "cuda:0". Where Ray was told
    not to set the variable (``RAY_EXPERIMENTAL_NOSET_*``), the physical ids it assigned are used instead. A
    device with no accelerator assigned stays as given. The engine's plugin answers
    (``BackendPlugin.accelerator_device``).
    """
    return _plugin(backend).accelerator_device(device, assigned, env)


def accelerator_request(
    backend: str | BackendPlugin, device: str, cluster: Mapping[str, float]
) -> tuple[float | None, dict[str, float]]:
    """The (num_gpus, resources) one actor asks Ray for when the caller gave neither: one GPU for
    ``onnxruntime:cuda`` (and tensorrt, rocm, migraphx), one NPU for ``ascend``, so that each actor owns its card.
    Nothing when the cluster has no such resource (the device is then opened as given, shared by every actor).
    The engine's plugin answers (``BackendPlugin.accelerator_request``)."""
    return _plugin(backend).accelerator_request(device, cluster)


def thread_options(backend: str | BackendPlugin, options: Mapping[str, Any], threads: int) -> dict[str, Any]:
    """``options`` with the engine's intra-op thread count set to ``threads`` unless the user set it
    (``BackendPlugin.thread_options``: OpenVINO's INFERENCE_NUM_THREADS, ONNX Runtime's intra_op_threads)."""
    return _plugin(backend).thread_options(options, threads)


def threads_for(cpus: float | None, node_cpus: int | None = None) -> int:
    """Engine threads for an actor holding ``cpus`` Ray CPUs: twice that, rounded (at least one), at most the
    node's CPUs. An actor decodes, letterboxes, post-processes and encodes between inferences, one after the
    other, so an engine held to its own CPUs leaves them idle meanwhile; twice as many threads let the inference
    of one actor use the CPUs another is not inferring on (docs/ray.md, "Threads")."""
    threads = max(1, math.floor(2 * (cpus or 1.0) + 0.5))
    return min(threads, node_cpus) if node_cpus else threads


def node_cpus() -> int:
    """The CPUs this process may run on (its affinity, which Ray leaves to the whole node)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


# -- the driver: convert once ------------------------------------------------------------------------
def prepare(
    model: Any,
    device: str = "openvino",
    *,
    options: Mapping[str, Any] | None = None,
    ship_model: bool | str = "auto",
    imgsz: Any = None,
) -> dict[str, Any]:
    """Convert ``model`` for ``device`` here, once (through the cache), and describe the engine for the actors.

    Returns the ``fn_constructor_kwargs`` of ``Predictor``'s ``engine`` argument: a small picklable dict (backend,
    device, options, artifact path, task...). Any conversion error is raised here, before a job starts.
    ``ship_model``: True puts the converted model in Ray's object store and every actor unpacks its own copy
    (for nodes that share no filesystem); False sends only the path (a shared cache folder); "auto" ships when
    the Ray cluster has more than one node, and actors that see the path use it.
    """
    from yolo_adapters.core.registry import resolve_spec
    from yolo_adapters.errors import OptionError
    from yolo_adapters.integration.runtime import resolve_artifact

    if ship_model not in (True, False, "auto"):
        raise OptionError(f"ship_model={ship_model!r}: use True, False or 'auto'")
    opts = dict(options or {})
    if imgsz is not None:
        opts.setdefault("imgsz", imgsz)
    # the engine is installed here, the options are valid, and the device is the text's, else options', else default
    plugin, engine_device, opts = resolve_spec(str(device), options=opts)
    artifact = Path(resolve_artifact(model, plugin, engine_device, opts)).resolve()
    task = None
    try:
        task = plugin.artifact_info(artifact, opts).task
    except Exception as exc:  # Ultralytics guesses the task then (with a warning)
        LOGGER.debug("no task in %s's metadata: %s", artifact, exc)
    spec: dict[str, Any] = {
        "backend": plugin.name,
        "device": engine_device,
        "options": opts,
        "artifact": str(artifact),
        "task": task,
        "model": Path(str(getattr(model, "pt_path", None) or model)).name if not hasattr(model, "forward") else "model",
        "blob": None,
        "prefer_shipped": ship_model is True,
    }
    if ship_model is True or (ship_model == "auto" and _nodes() > 1):
        import ray

        spec["blob"] = ray.put(_pack(artifact))
        spec["blob_path"] = _inner_path(artifact)
    return spec


def _nodes() -> int:
    import ray

    if not ray.is_initialized():
        return 1
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def _inner_path(artifact: Path) -> str:
    """Where ``_pack`` puts the artifact inside its tar: ``<folder>/<file>``, or ``<folder>`` for a folder."""
    return artifact.name if artifact.is_dir() else f"{artifact.parent.name}/{artifact.name}"


def _pack(artifact: Path) -> bytes:
    """The artifact's folder (IR .xml + .bin + metadata.yaml, or the .onnx and its metadata) as a tar."""
    folder = artifact if artifact.is_dir() else artifact.parent
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(folder), arcname=folder.name)
    return buf.getvalue()


def _unpack(blob: bytes, inner: str) -> Path:
    """Unpack a shipped artifact once per node (a folder named by its content hash); ``inner`` is the artifact's
    path inside the tar (``_inner_path``). Returns its path there."""
    from filelock import FileLock

    digest = hashlib.sha256(blob).hexdigest()[:16]
    root = Path(tempfile.gettempdir()) / "yolo_adapters_ray" / digest
    target = root / inner
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        done = root / ".complete"
        if not done.exists():
            root.mkdir(parents=True, exist_ok=True)
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
                tar.extractall(str(root), filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(
                    str(root)
                )
            done.touch()
    return target


# -- the actor ----------------------------------------------------------------------------------------
class Predictor:
    """One engine per Ray actor: ``ds.map_batches(Predictor, fn_constructor_kwargs=..., concurrency=N)``.

    ``engine`` is what ``prepare(model, device)`` returned on the driver (convert once there). Passing
    ``model=`` and ``device=`` instead works too, but then each actor converts (or finds it in a shared
    cache): prefer ``prepare``.

    Batches come in as Ray's numpy format: a ``path`` column (the actor reads the file: local paths, or URIs
    through pyarrow filesystems) and/or an ``image_column`` (HWC uint8 arrays, RGB as ``read_images`` gives
    them unless ``channels="BGR"``, or encoded image bytes as ``read_binary_files`` gives them). Out comes one
    row per image (yolo_adapters.ray._encode describes the columns).
    """

    def __init__(
        self,
        engine: Mapping[str, Any] | None = None,
        *,
        model: Any = None,
        device: str = "openvino",
        options: Mapping[str, Any] | None = None,
        image_column: str = "image",
        channels: str = "RGB",
        fail_fast: bool = False,
        threads: int | None = None,
        predict_args: Mapping[str, Any] | None = None,
    ) -> None:
        if engine is None:
            if model is None:
                raise ValueError("Predictor needs engine=prepare(model, device) (or model= and device=).")
            LOGGER.warning("Predictor(model=...) converts in every actor; pass engine=prepare(...)")
            engine = prepare(model, device, options=options, ship_model=False)
        if channels.upper() not in ("RGB", "BGR"):
            raise ValueError(f"channels={channels!r}: use 'RGB' (ray.data.read_images) or 'BGR' (OpenCV)")
        self.spec = dict(engine)
        self.image_column = image_column
        self.rgb = channels.upper() == "RGB"
        self.fail_fast = bool(fail_fast)
        bad = sorted(set(predict_args or {}) & set(_RESERVED))
        if bad:
            raise ValueError(f"predict arguments {bad} are set by yolo_adapters.ray; leave them out")
        self.predict_args = {"verbose": False, **dict(predict_args or {})}

        cpus, assigned = _assigned_resources()
        self.threads = int(threads or threads_for(cpus, node_cpus()))
        from yolo_adapters.core.registry import get_backend

        backend = self.spec["backend"]
        plugin = get_backend(backend)
        self.device = plugin.accelerator_device(self.spec["device"], assigned, os.environ)
        self.engine_name = f"{backend}:{self.device}"
        options = plugin.thread_options(self.spec["options"], self.threads)
        options["device"] = self.device
        # pre- and post-processing (torch, OpenCV): the CPUs the actor holds, or the threads it was given
        _limit_host_threads(int(threads) if threads else max(1, math.floor((cpus or 1.0) + 0.5)))

        from ultralytics import YOLO

        import yolo_adapters

        plugin.check_device(self.device)
        artifact = self._artifact()
        yolo_adapters.activate(backend, **options)
        self.model = YOLO(str(artifact), task=self.spec.get("task"))
        self.names = {int(k): str(v) for k, v in dict(self.model.names or {}).items()}
        self.meta = {
            "names": self.names,
            "task": self.spec.get("task") or self.model.task,
            "engine": self.engine_name,
            "model": self.spec.get("model"),
        }
        LOGGER.info("%s on %s with %d threads", artifact, self.engine_name, self.threads)

    def _artifact(self) -> Path:
        artifact = Path(self.spec["artifact"])
        blob = self.spec.get("blob")
        if blob is not None and (self.spec.get("prefer_shipped") or not artifact.exists()):
            import ray

            data = ray.get(blob) if isinstance(blob, ray.ObjectRef) else blob
            return _unpack(data, self.spec["blob_path"])
        if not artifact.exists():
            raise FileNotFoundError(
                f"The converted model {artifact} is not on this node and was not shipped: call "
                "yolo_adapters.ray.predict(..., ship_model=True) or put the cache on a shared filesystem "
                "(YOLO_ADAPTERS_CACHE)."
            )
        return artifact

    # -- per batch -------------------------------------------------------------------------------------
    def __call__(self, batch: Mapping[str, Any]) -> Any:
        paths = batch.get("path")
        images = batch.get(self.image_column) if self.image_column in batch else None
        n = len(paths) if paths is not None else len(images) if images is not None else 0
        rows = []
        for i in range(n):
            path = None if paths is None or paths[i] is None else str(paths[i])
            rows.append(self._one(path, None if images is None else images[i]))
        return _encode.to_table(rows, self.meta)

    def _one(self, path: str | None, image: Any) -> dict[str, Any]:
        shape = None
        try:
            bgr = self._bgr(path, image)
            shape = bgr.shape[:2]
            results: Any = self.model.predict(bgr, **self.predict_args)
            result = results[0]
            return _encode.encode_result(result, path, self.engine_name)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            if self.fail_fast:
                raise RuntimeError(f"yolo_adapters.ray: {path or 'image'}: {message}") from exc
            LOGGER.warning("%s: %s", path or "image", message)
            return _encode.error_row(path, self.engine_name, message, shape)

    def _bgr(self, path: str | None, image: Any) -> np.ndarray:
        """The image as Ultralytics reads a file: HWC uint8 BGR."""
        import cv2

        if image is None:
            if path is None:
                raise ValueError("row has neither an image nor a path")
            return read_image(path)
        if isinstance(image, (bytes, bytearray, memoryview)):
            return _decode(bytes(image), path)
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise ValueError(f"image has dtype {arr.dtype}; expected uint8 (HWC)")
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1):
            return cv2.cvtColor(arr.reshape(arr.shape[:2]), cv2.COLOR_GRAY2BGR)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ValueError(f"image has shape {arr.shape}; expected HxWx3 (or HxW, HxWx4)")
        if arr.shape[2] == 4:
            return cv2.cvtColor(arr, cv2.COLOR_RGBA2BGR if self.rgb else cv2.COLOR_BGRA2BGR)
        return np.ascontiguousarray(arr[..., ::-1]) if self.rgb else np.ascontiguousarray(arr)


def _assigned_resources() -> tuple[float | None, dict[str, list]]:
    """CPUs Ray gave this actor, and its accelerator ids (empty outside Ray)."""
    try:
        import ray

        if not ray.is_initialized():
            return None, {}
        ctx = ray.get_runtime_context()
        cpus = ctx.get_assigned_resources().get("CPU")
        return cpus, dict(ctx.get_accelerator_ids())
    except Exception:  # an older Ray, or outside a worker
        return None, {}


def _limit_host_threads(threads: int) -> None:
    """Pre/post-processing (torch NMS, OpenCV resize) stays within the actor's CPUs too."""
    try:
        import torch

        torch.set_num_threads(threads)
    except Exception:
        pass
    try:
        import cv2

        cv2.setNumThreads(threads)
    except Exception:
        pass


def _decode(data: bytes, path: str | None) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot decode image {path or ''} ({len(data)} bytes): corrupt or not an image")
    return img


def read_image(path: str) -> np.ndarray:
    """Read ``path`` as Ultralytics does (BGR); URIs (s3://, gs://, ...) through pyarrow's filesystems."""
    if "://" in path and not path.startswith("file://"):
        import pyarrow.fs as pafs

        fs, inner = pafs.FileSystem.from_uri(path)
        with fs.open_input_stream(inner) as f:
            return _decode(f.read(), path)
    local = path[len("file://") :] if path.startswith("file://") else path
    if not os.path.isfile(local):
        raise FileNotFoundError(f"no such image file: {local}")
    from ultralytics.utils.patches import imread

    img = imread(local)
    if img is None:
        raise ValueError(f"cannot decode image {local}: corrupt or not an image")
    return img
