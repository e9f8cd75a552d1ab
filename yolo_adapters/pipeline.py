"""The stream pipeline: loading, pre-processing, inference and post-processing of successive batches overlap.

Ultralytics' predictor runs one batch at a time: load, preprocess, ``model(im)``, postprocess, yield. Its 8.4
``stream_inference`` already hands video and folder sources to a one-batch-ahead loader (``_prefetch``) when the
model says ``prefetch``. With the patch layer on (``patching.targets.PIPELINE``), that loader is replaced, for an
:class:`~yolo_adapters.module.EngineModule` only, by :meth:`Pipeline.prefetch`: a worker thread loads batch
*k+1..k+depth*, runs the predictor's own ``preprocess`` on it and starts it on the engine (OpenVINO infer requests
run without the GIL), while the predictor's thread post-processes batch *k*. When the predictor then calls
``preprocess`` and ``model(im)`` for a batch, the wrappers hand back the tensor made ahead and wait for the
inference already under way.

Contract kept: every batch goes through the predictor's loop in input order (callbacks, ``write_results``,
saving, tracking unchanged), nothing is dropped, at most ``depth`` batches are ahead (bounded memory), an error
in loading or inference surfaces in the predictor's thread at the batch that raised it, and closing the
stream (``break`` in a ``stream=True`` loop) stops the worker and returns every infer request before
Ultralytics releases the video capture.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Iterator

from .module import STREAM, EngineModule

LOGGER = logging.getLogger("yolo_adapters")

_END = object()


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def active() -> "Pipeline | None":
    """The pipeline of the stream being advanced in this thread, if any."""
    return STREAM.get()


def pipeline_for(predictor: Any) -> "Pipeline | None":
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
    except BaseException:  # noqa: BLE001 - the stream is being abandoned; its error has no reader
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
    def drive(self, generator: Iterator) -> Iterator:
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

    def prefetch(self, iterator: Iterator) -> Iterator:
        """Yield the items of ``iterator`` in order while a worker loads, pre-processes and starts the next ones."""
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
            try:
                for item in iterator:
                    batch = item[0]
                    tensor = self.predictor.preprocess(batch[1])
                    pending = self.model.submit(tensor)
                    if not offer((item, tensor, pending)):
                        _release(pending)
                        return
                    if stop.is_set():
                        return
                offer(_END)
            except BaseException as exc:  # noqa: BLE001 - handed to the predictor's thread, in order
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
                im0s = item[0][1]
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
