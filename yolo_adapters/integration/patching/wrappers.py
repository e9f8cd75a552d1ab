"""The wrappers: ``select_device`` recognises plugin device strings, ``AutoBackend`` builds our module, and the
stream-pipeline wrappers (``stream_inference``, ``setup_source``, ``preprocess``, ``pre_transform``; see
yolo_adapters.integration.pipeline).

All pass straight through to Ultralytics for anything that is not a plugin route.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from yolo_adapters.core.devices import Selection, resolve
from yolo_adapters.errors import ModelFormatError
from yolo_adapters.integration.module import EngineModule, NPUOutputsOnHost
from yolo_adapters.integration.pipeline import active, pipeline_for, square_letterbox, uniform_source
from yolo_adapters.integration.runtime import build_engine_module
from yolo_adapters.integration.shapes import for_predictor, rect_letterbox


def select_device_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    device = args[0] if args else kwargs.get("device", "")
    selection = resolve(device)
    return wrapped(*args, **kwargs) if selection is None else selection


def autobackend_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    try:
        bound = inspect.signature(wrapped).bind_partial(*args, **kwargs).arguments
    except TypeError:
        return wrapped(*args, **kwargs)
    selection = bound.get("device")
    if not isinstance(selection, Selection):
        stock = wrapped(*args, **kwargs)
        if getattr(getattr(stock, "device", None), "type", None) == "npu":
            return NPUOutputsOnHost(stock)  # torch_npu route: NMS and post-processing get CPU tensors
        return stock
    model = bound.get("model", bound.get("weights"))
    return build_engine_module(
        model, selection, data=bound.get("data"), batch=bound.get("batch"), end2end=bound.get("end2end")
    )


def stream_inference_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """``BasePredictor.stream_inference``: on an EngineModule, run the generator with the stream pipeline active."""
    pipeline = pipeline_for(instance) if instance is not None else None
    generator = wrapped(*args, **kwargs)
    return generator if pipeline is None else pipeline.drive(generator)


def preprocess_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """``BasePredictor.preprocess``: the tensor the pipeline made ahead for this batch, else stock."""
    pipeline = active()
    if pipeline is not None and pipeline.predictor is instance and len(args) == 1 and not kwargs:
        tensor = pipeline.preprocessed(args[0])
        if tensor is not None:
            return tensor
    return wrapped(*args, **kwargs)


def setup_source_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """``BasePredictor.setup_source``: inside a pipelined stream, the source is read ahead by the pipeline (an
    in-memory list or tensor as engine-sized batches: bounded memory, first result after the first batch)."""
    result = wrapped(*args, **kwargs)
    pipeline = active()
    if pipeline is not None and pipeline.predictor is instance and getattr(instance, "dataset", None) is not None:
        instance.dataset = pipeline.run_ahead(instance.dataset)
    return result


def pre_transform_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """``BasePredictor.pre_transform``: a batch cut from an in-memory list of mixed shapes is letterboxed the way
    Ultralytics letterboxes that whole list (square), even when the batch's own images share a shape."""
    if len(args) != 1 or kwargs or not isinstance(args[0], list) or not args[0]:
        return wrapped(*args, **kwargs)
    images = args[0]
    if square_letterbox():
        return _square(wrapped, images)
    model = getattr(instance, "model", None)
    book = model.shapes if isinstance(model, EngineModule) else None
    if book is None:
        return wrapped(images)
    frame = tuple(images[0].shape)
    if any(tuple(im.shape) != frame for im in images):
        return wrapped(images)  # Ultralytics letterboxes a batch of mixed sizes square
    # A static model with a shape book: letterboxed as for PyTorch (Ultralytics' own rect decision) when the book
    # runs that shape, else to the square the model was built for. The rect shape of a frame size is learnt from
    # its first letterbox, so a frame the book sends to the square is letterboxed once.
    uniform = len(images) > 1 or uniform_source(getattr(instance, "dataset", None))
    known = book.letterboxed.get(frame)
    if known is not None and not book.admit(known, len(images), uniform):
        return wrapped(images)
    with rect_letterbox():
        letterboxed = wrapped(images)
    shape = (int(letterboxed[0].shape[0]), int(letterboxed[0].shape[1]))
    if shape == known:
        return letterboxed
    book.letterboxed[frame] = shape  # first seen, or the predictor's own rect decision changed (rect=, scale_fill)
    return letterboxed if book.admit(shape, len(images), uniform) else wrapped(images)


def _square(wrapped: Callable, images: list) -> Any:
    first = images[0]
    odd = np.zeros(((1, 1) if first.shape[:2] != (1, 1) else (2, 2)) + first.shape[2:], first.dtype)  # not this shape
    return wrapped([*images, odd])[:-1]  # each image is letterboxed on its own: dropping the odd one changes nothing


def setup_model_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """``BasePredictor.setup_model``: refuse a predictor whose task is not the engine model's.

    Ultralytics would post-process a pose model's outputs as detections (or worse) without a word."""
    with for_predictor():  # a static model built now takes each source's rect shape (integration.shapes)
        result = wrapped(*args, **kwargs)

    model = getattr(instance, "model", None)
    wanted = getattr(getattr(instance, "args", None), "task", None)
    if isinstance(model, EngineModule) and wanted and model.task and wanted != model.task:
        raise ModelFormatError(
            f"{model.artifact} is a {model.task} model but the predictor was set up for task={wanted!r}: "
            f"pass task={model.task!r} to YOLO(...) (or drop task=)."
        )
    return result


WRAPPERS: dict[str, Callable] = {
    "BasePredictor.setup_model": setup_model_wrapper,
    "select_device": select_device_wrapper,
    "AutoBackend": autobackend_wrapper,
    "BasePredictor.stream_inference": stream_inference_wrapper,
    "BasePredictor.preprocess": preprocess_wrapper,
    "BasePredictor.setup_source": setup_source_wrapper,
    "BasePredictor.pre_transform": pre_transform_wrapper,
}
