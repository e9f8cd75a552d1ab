"""From what Ultralytics asks for (a model and a device) to an ``EngineModule`` ready to run.

The plugin is looked up in the registry, the engine artifact found or converted once (``convert``, through the
cache), loaded by the plugin and wrapped in the ``EngineModule`` the predictor runs.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from yolo_adapters.core import registry
from yolo_adapters.core.model_info import info_from_module
from yolo_adapters.errors import ModelFormatError
from yolo_adapters.integration.export import cached_artifact, load_checkpoint, prepare_artifact, weights_digest
from yolo_adapters.integration.module import EngineModule
from yolo_adapters.integration.shapes import PREDICTOR, Shape, ShapeBook, parse_shapes

if TYPE_CHECKING:
    from yolo_adapters.backends.base import BackendPlugin
    from yolo_adapters.core.devices import Selection

LOGGER = logging.getLogger(__name__)


def resolve_backend(selection: Selection) -> BackendPlugin:
    """The plugin a device selection names, or the error saying what to install."""
    return registry.resolve_spec(selection.backend).plugin


def build_engine_module(
    model: Any, selection: Selection, data: Any = None, batch: int | None = None, end2end: bool | None = None
) -> EngineModule:
    """Everything between Ultralytics asking for a model and an engine ready to run it. ``end2end``: what the
    predictor asked AutoBackend for (Ultralytics >= 8.4 passes True for ``predict(nms=False)``: the NMS-free
    one-to-one head of YOLO26 / YOLOv10)."""
    if isinstance(model, EngineModule):  # a module built already (the INT8 report's validator runs one)
        return model
    backend = resolve_backend(selection)
    options = backend.validate_options(selection.options)
    backend.check_device(selection.device)
    pinned = parse_shapes(options["shapes"]) if options.get("shapes") is not None else None
    first = dict(options, imgsz=list(pinned[0])) if pinned else options
    artifact = resolve_artifact(model, backend, selection.device, first, batch, end2end=end2end)
    module = _load(backend, artifact, selection.device, first)
    if PREDICTOR.get() and _rect_capable(model, backend, module, options):
        module.serve_shapes(_shape_book(model, module, backend, selection.device, options, pinned, batch, end2end))
    elif pinned and len(pinned) > 1:
        LOGGER.info("shapes=%s: only the first is used here (a validator, or an engine file given as is)", pinned)
    return module


def _rect_capable(model: Any, backend: BackendPlugin, module: EngineModule, options: dict[str, Any]) -> bool:
    """Whether a predictor's static model takes each source's rect shape: converted here from PyTorch (an engine
    file given as is has its one shape), not a classifier (no letterbox), the engine affording other shapes, and
    ``rect`` not turned off."""
    if module.dynamic or module.task == "classify" or options.get("rect") is False:
        return False
    source = _single(model)
    if not isinstance(source, torch.nn.Module) and (source.suffix != ".pt" or backend.find_artifact(source)):
        return False
    return bool(options.get("shapes") is not None or _budget(backend, module.engine_device, options) > 0)


def _single(model: Any) -> torch.nn.Module | Path:
    """The model Ultralytics handed AutoBackend: a module, or the path of one file."""
    if isinstance(model, (list, tuple)) and len(model) == 1:
        model = model[0]
    return model if isinstance(model, torch.nn.Module) else Path(str(model))


def _budget(backend: BackendPlugin, device: str, options: dict[str, Any]) -> int:
    budget = options.get("max_shapes")
    return int(budget) if budget is not None else int(backend.shape_budget(device, options))


def _shape_book(
    model: Any,
    module: EngineModule,
    backend: BackendPlugin,
    device: str,
    options: dict[str, Any],
    pinned: tuple[Shape, ...] | None,
    batch: int | None,
    end2end: bool | None,
) -> ShapeBook:
    """The shape book of a predictor's static model: its square ``imgsz`` (the model's, whatever shape was built
    first), the engine built already, and how to build another shape (the same conversion at that ``imgsz``)."""
    loaded: dict[str, Any] = {}

    def pytorch() -> torch.nn.Module:
        """The PyTorch model, loaded once per book (a .pt path is read on first need, not per shape)."""
        if "module" not in loaded:
            source = _single(model)
            loaded["module"] = source if isinstance(source, torch.nn.Module) else load_checkpoint(source)
        return loaded["module"]

    first = (int(module.engine.input_shape[2]), int(module.engine.input_shape[3]))
    square = first
    if pinned:  # the first engine is the first pinned shape; the square is the model's own imgsz
        imgsz = options.get("imgsz") or info_from_module(pytorch()).imgsz
        square = (int(imgsz), int(imgsz)) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))

    def build(shape: Shape) -> Any:
        shaped = dict(options, imgsz=list(shape))
        artifact = resolve_artifact(pytorch(), backend, device, shaped, batch, end2end=end2end)
        engine = backend.load(artifact, device, shaped)
        if options.get("request_timeout") is not None:
            engine.timeout = float(options["request_timeout"])
        return engine

    def cached(shape: Shape) -> bool:
        if "digest" not in loaded:  # hashed once per book, not once per shape asked about
            loaded["digest"] = weights_digest(pytorch())
        shaped = dict(options, imgsz=list(shape))
        return _artifact(pytorch(), backend, device, shaped, batch, end2end, False, loaded["digest"]) is not None

    return ShapeBook(
        square,
        build,
        budget=_budget(backend, device, options),
        min_frames=backend.shape_min_frames(device, options),
        pinned=pinned,
        engines={first: module.engine},
        cached=cached,
    )


def resolve_artifact(
    model: Any,
    backend: BackendPlugin,
    device: str,
    options: dict[str, Any],
    batch: int | None = None,
    end2end: bool | None = None,
) -> Path:
    """The engine artifact for ``model``: given as is, or converted from PyTorch once and cached. With ``end2end``
    and a model that has a one-to-one head, the export is NMS-free (``nms=False``: its own cache entry), so the
    engine answers with the head PyTorch uses for ``predict(nms=False)``."""
    found = _artifact(model, backend, device, options, batch, end2end, convert=True)
    assert found is not None  # converted when not cached
    return found


def _artifact(
    model: Any,
    backend: BackendPlugin,
    device: str,
    options: dict[str, Any],
    batch: int | None,
    end2end: bool | None,
    convert: bool,
    digest: str | None = None,
) -> Path | None:
    if isinstance(model, (list, tuple)):
        model = model[0] if len(model) == 1 else model
    if isinstance(model, torch.nn.Module):
        module, label = model, Path(str(getattr(model, "pt_path", "") or "model")).stem
    else:
        path = Path(str(model))
        if not path.exists():
            raise ModelFormatError(f"Model {path} does not exist.")
        artifact = backend.find_artifact(path)
        if artifact is not None:
            return artifact
        if path.suffix != ".pt":
            raise ModelFormatError(
                f"{path} is neither a PyTorch .pt checkpoint nor a model the {backend.name!r} backend runs; "
                f"pass the .pt and yolo_adapters converts it for {backend.name}."
            )
        module, label = load_checkpoint(path), path.stem

    info = info_from_module(module)
    imgsz = options.get("imgsz") or info.imgsz
    imgsz = (int(imgsz), int(imgsz)) if isinstance(imgsz, int) else tuple(int(v) for v in imgsz)
    if len(imgsz) != 2 or any(v <= 0 or v % info.stride for v in imgsz):
        raise ModelFormatError(
            f"imgsz={list(imgsz)} must be one or two positive multiples of the model stride {info.stride}."
        )
    plan = backend.export_plan(device, options, imgsz, int(options.get("batch") or batch or 1))
    if end2end and _has_one_to_one_head(module):
        plan = dataclasses.replace(plan, extra=(*plan.extra, ("nms", False)))
    if not convert:
        return cached_artifact(module, backend, plan, options.get("cache_dir"), label, digest)
    return prepare_artifact(module, backend, plan, options.get("cache_dir"), label)


def _has_one_to_one_head(module: torch.nn.Module) -> bool:
    layers = getattr(module, "model", None)
    head = layers[-1] if isinstance(layers, torch.nn.Sequential) and len(layers) else None
    return getattr(head, "one2one_cv2", None) is not None


def _load(backend: BackendPlugin, artifact: Path, device: str, options: dict) -> EngineModule:
    info = backend.artifact_info(artifact, options)
    engine = backend.load(artifact, device, options)
    if options.get("request_timeout") is not None:
        engine.timeout = float(options["request_timeout"])
    LOGGER.info("%s on %s:%s (%s)", artifact, backend.name, device, info.task)
    return EngineModule(engine, info, backend.name, device, artifact, pipeline=options.get("pipeline", True))
