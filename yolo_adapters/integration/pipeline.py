"""The stream pipeline: loading, pre-processing, inference and post-processing of successive batches overlap.

Ultralytics' predictor runs one batch at a time: load, preprocess, ``model(im)``, postprocess, yield. With the
patch layer on (the optional ``BasePredictor.stream_inference`` target in ``patching.targets.TARGETS``) and an
:class:`~yolo_adapters.integration.module.EngineModule` as the model,
``setup_source`` hands the predictor a source read ahead by :meth:`Pipeline.prefetch`: a worker thread loads batch
*k+1..k+depth*, runs the predictor's own ``preprocess`` on it and starts it on the engine (OpenVINO infer requests
run without the GIL), while the predictor's thread post-processes batch *k*. When the predictor then calls
``preprocess`` and ``model(im)`` for a batch, the wrappers hand back the tensor made ahead and wait for the
inference already under way. Every source kind goes this way on every supported release: in-memory lists and
tensors as engine-sized batches (:class:`ChunkedSource`), everything else (folders, globs, videos, streams,
screenshots) batch by batch with a snapshot of the loader's state (:class:`RunAheadSource`).

Contract kept: every batch goes through the predictor's loop in input order (callbacks, ``write_results``,
saving, tracking unchanged), nothing is dropped, at most ``depth`` batches are ahead (bounded memory), an error
in loading or inference surfaces in the predictor's thread at the batch that raised it, and closing the
stream (``break`` in a ``stream=True`` loop) stops the worker and returns every infer request before
Ultralytics releases the video capture.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any

from yolo_adapters.integration.module import STREAM, EngineModule

LOGGER = logging.getLogger(__name__)

_END = object()


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


#: Ultralytics' loaders of in-memory sources, which make the whole source one batch (``bs = len(list)``).
IN_MEMORY_LOADERS = ("LoadPilAndNumpy", "LoadTensor")
#: Set in the pipeline's worker while it pre-processes batches of an in-memory list whose images differ in shape:
#: Ultralytics letterboxes such a list to a square as a whole, so every batch cut from it must be too, even one
#: whose own images happen to share a shape (see ``square_letterbox``).
_SQUARE: contextvars.ContextVar[bool] = contextvars.ContextVar("yolo_adapters_square", default=False)


def square_letterbox() -> bool:
    """Whether the batch being pre-processed in this thread must be letterboxed as a list of mixed shapes."""
    return _SQUARE.get()


def uniform_source(dataset: Any) -> bool:
    """Whether every frame of ``dataset`` has one size: a video or stream, or an in-memory list of one shape."""
    if dataset is None:
        return False
    if isinstance(dataset, ChunkedSource):
        return dataset.uniform
    kind = getattr(dataset, "source_type", None)
    live = bool(getattr(kind, "stream", False) or getattr(kind, "screenshot", False))
    return live or getattr(dataset, "mode", None) in ("video", "stream")


class ChunkedSource:
    """An in-memory source as engine-sized batches run ahead by the pipeline, in order, with the source's names.

    Ultralytics makes a list of N frames one batch: one N x 3 x H x W float tensor, all N run at once, the first
    result after the last frame. Here the list is cut into batches of ``size`` (the engine's parallel requests or
    ``batch=``, whichever is larger), at most ``Pipeline.depth`` of them ahead: memory is bounded whatever N, the
    first result comes after the first batch, and every result is the one stock Ultralytics gives (same paths, same
    order, and the letterbox decision of the whole list)."""

    def __init__(self, dataset: Any, size: int, pipeline: Pipeline) -> None:
        self._dataset, self.size, self._pipeline = dataset, size, pipeline
        images = getattr(dataset, "im0", None)
        shapes = {tuple(getattr(im, "shape", ())) for im in images} if isinstance(images, list) else set()
        self._mixed = len(shapes) > 1  # a list of mixed shapes is letterboxed square as a whole
        self.uniform = len(shapes) == 1  # one frame size: a static model's rect shape from the first batch
        self.batches = -(-len(dataset.paths) // size)

    def __getattr__(self, name: str) -> Any:  # mode, source_type, bs, count...: the source's own
        return getattr(self._dataset, name)

    def __len__(self) -> int:
        return len(self._dataset)

    def _chunks(self) -> Iterator[tuple[list, Any, list]]:
        paths, images = list(self._dataset.paths), self._dataset.im0
        for start in range(0, len(paths), self.size):
            part = paths[start : start + self.size]
            yield part, images[start : start + self.size], [""] * len(part)

    def __iter__(self) -> Iterator[tuple[list, Any, list]]:
        self._dataset.count = 1  # what Ultralytics' loader reports while its one batch is processed
        return self._pipeline.prefetch(self._chunks(), batch_of=lambda item: item, square=self._mixed)


class RunAheadSource:
    """A loader Ultralytics iterates batch by batch (folders, globs, videos, streams), read ahead by the pipeline.

    The loop reads the loader's state while it handles a batch (``mode``, ``frame``, ``count``, ``fps`` name the
    saved files and video frames); the worker has moved the loader on by then, so every batch carries a snapshot
    of the loader taken when it was read (what Ultralytics' own ``_prefetch`` does), and attributes are read from
    the snapshot of the batch the loop is on. ``close`` (LoadStreams' threads, captures) goes to the loader itself."""

    def __init__(self, dataset: Any, pipeline: Pipeline) -> None:
        self._dataset, self._current, self._pipeline = dataset, dataset, pipeline

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dataset if name == "close" else self._current, name)

    def __len__(self) -> int:
        return len(self._dataset)

    def _batches(self) -> Iterator[tuple[Any, Any]]:
        for batch in self._dataset:
            yield batch, copy.copy(self._dataset)

    def __iter__(self) -> Iterator[Any]:
        for batch, snapshot in self._pipeline.prefetch(self._batches()):
            self._current = snapshot
            yield batch


def active() -> Pipeline | None:
    """The pipeline of the stream being advanced in this thread, if any."""
    return STREAM.get()


def pipeline_for(predictor: Any) -> Pipeline | None:
    """A pipeline for ``predictor`` when its model is ours with ``pipeline`` on, else None (stock loop)."""
    model = getattr(predictor, "model", None)
    if not isinstance(model, EngineModule) or not model.pipeline:
        return None
    base = _base_predictor(predictor)
    # Predictors with their own preprocess (classify, YOLOE prompts) keep the stock loop: the tensor made ahead
    # must be the one their loop would make.
    if base is None or _raw(type(predictor), "preprocess") is not _raw(base, "preprocess"):
        return None
    if _custom_callbacks(predictor, "on_predict_batch_start"):
        return None  # such a callback may change the batch or the predictor before preprocess: run in step
    return Pipeline(predictor, model)


def _base_predictor(predictor: Any) -> type | None:
    for cls in type(predictor).__mro__:
        if cls.__name__ == "BasePredictor":
            return cls
    return None


def _raw(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None


def _custom_callbacks(predictor: Any, event: str) -> bool:
    try:
        from ultralytics.utils.callbacks.base import default_callbacks
    except Exception:  # pragma: no cover - older layouts: assume the worst
        return True
    defaults = {id(f) for f in default_callbacks.get(event, [])}
    return any(id(f) not in defaults for f in getattr(predictor, "callbacks", {}).get(event, []))


def _release(entry: Any) -> None:
    """Wait for and drop a started inference (returns its infer requests to the engine)."""
    try:
        entry.result()
    except BaseException:
        pass


class Pipeline:
    """One ``stream_inference`` run of one predictor on an EngineModule."""

    def __init__(self, predictor: Any, model: Any) -> None:
        self.predictor = predictor
        self.model = model
        #: batches loaded, pre-processed and started ahead of the one the predictor is on
        self.depth = max(int(getattr(model.engine, "parallel", 1)), 1) + 1
        self._ready: dict[int, tuple[Any, Any, Any]] = {}  # id(im0s) -> (im0s, tensor, pending)
        self._started: dict[int, tuple[Any, Any]] = {}  # id(tensor) -> (tensor, pending)
        self.ahead_max = 0  # most batches seen ahead at once (tests check the bound)

    # -- what the wrappers call -------------------------------------------------------------------------
    def drive(self, generator: Generator) -> Iterator:
        """Advance Ultralytics' ``stream_inference`` generator with this pipeline active, then clean up."""
        try:
            while True:
                token = STREAM.set(self)
                try:
                    item = next(generator)
                except StopIteration:
                    return
                finally:
                    STREAM.reset(token)
                yield item
        finally:
            token = STREAM.set(self)
            try:
                generator.close()
            finally:
                STREAM.reset(token)
                self._drop_stale()

    def preprocessed(self, im0s: Any) -> Any:
        """The tensor made ahead for the batch ``im0s`` (moved to the started map), or None."""
        entry = self._ready.pop(id(im0s), None)
        if entry is None or entry[0] is not im0s:
            return None
        _, tensor, pending = entry
        self._started[id(tensor)] = (tensor, pending)
        return tensor

    def take(self, im: Any) -> Any:
        entry = self._started.pop(id(im), None)
        if entry is None or entry[0] is not im:
            return None
        return entry[1]

    def run_ahead(self, dataset: Any) -> Any:
        """``dataset`` read ahead by this pipeline: an in-memory source Ultralytics makes one batch of (a list of
        arrays or PIL images, a BCHW tensor) cut into engine-sized batches, any other loader batch by batch."""
        if type(dataset).__name__ in IN_MEMORY_LOADERS:
            if len(getattr(dataset, "paths", ())) < 2:
                return dataset  # one image: one batch, nothing to overlap
            batch = int(getattr(getattr(self.predictor, "args", None), "batch", 1) or 1)
            return ChunkedSource(dataset, max(batch, int(getattr(self.model.engine, "parallel", 1)), 1), self)
        if isinstance(dataset, (ChunkedSource, RunAheadSource)) or not hasattr(dataset, "__iter__"):
            return dataset
        kind = getattr(dataset, "source_type", None)
        live = bool(getattr(kind, "stream", False) or getattr(kind, "screenshot", False))
        if not live and not any(getattr(dataset, "video_flag", ()) or ()) and len(dataset) < 2:
            return dataset  # one batch of images (the latency case): nothing to overlap, no worker thread
        return RunAheadSource(dataset, self)

    def prefetch(self, iterator: Iterator, batch_of: Any = None, square: bool = False) -> Iterator:
        """Yield the items of ``iterator`` in order while a worker loads, pre-processes and starts the next ones.

        An item is ``(batch, loader snapshot)`` (``RunAheadSource``), or what ``batch_of(item)`` says is the batch
        ``(paths, im0s, strings)``. ``square``: the batches come from one in-memory list of mixed
        shapes (``ChunkedSource``), letterboxed square like the whole list."""
        batch_of = batch_of or (lambda item: item[0])
        ready: queue.Queue = queue.Queue(maxsize=self.depth)
        stop = threading.Event()

        def offer(entry: Any) -> bool:
            while not stop.is_set():
                try:
                    ready.put(entry, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            _SQUARE.set(square)  # the worker's own context: the letterbox decision of the whole source
            try:
                for item in iterator:
                    batch = batch_of(item)
                    tensor = self.predictor.preprocess(batch[1])
                    pending = self.model.submit(tensor)
                    if not offer((item, tensor, pending)):
                        _release(pending)
                        return
                    if stop.is_set():
                        return
                offer(_END)
            except BaseException as exc:
                offer(_Failure(exc))

        worker = threading.Thread(target=work, name="yolo_adapters-pipeline", daemon=True)
        worker.start()
        try:
            while True:
                entry = ready.get()
                if entry is _END:
                    return
                if isinstance(entry, _Failure):
                    raise entry.exc
                self.ahead_max = max(self.ahead_max, ready.qsize() + 1)
                item, tensor, pending = entry
                self._drop_stale()  # a previous batch whose inference the loop never asked for
                im0s = batch_of(item)[1]
                self._ready[id(im0s)] = (im0s, tensor, pending)
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # free requests so a worker blocked in submit can finish
                try:
                    entry = ready.get(timeout=0.05)
                except queue.Empty:
                    continue
                if isinstance(entry, tuple):
                    _release(entry[2])
            worker.join()
            while True:
                try:
                    entry = ready.get_nowait()
                except queue.Empty:
                    break
                if isinstance(entry, tuple):
                    _release(entry[2])
            self._drop_stale()

    def _drop_stale(self) -> None:
        for _, _, pending in self._ready.values():
            _release(pending)
        for _, pending in self._started.values():
            _release(pending)
        self._ready.clear()
        self._started.clear()
