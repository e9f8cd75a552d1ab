"""The engine: one ais_bench ``InferSession`` per NPU, batches padded to the compiled dynamic-batch gears."""

from __future__ import annotations

import queue
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from yolo_adapters.backends.ascend.atc import artifact_precision
from yolo_adapters.backends.ascend.sessions import SharedSession, acquire, dtype_of, release_all
from yolo_adapters.backends.base import Engine
from yolo_adapters.errors import ModelFormatError


class AscendEngine(Engine):
    """One InferSession per NPU; each call borrows an idle session (FIFO, so calls rotate over the NPUs).

    A dynamic-batch .om reports batch -1 but fixed H and W: ``dynamic`` stays False so Ultralytics letterboxes
    every frame to the compiled size, and batches are padded up to the nearest compiled gear here.
    """

    def __init__(self, om: Path, device_ids: list[int], options: Mapping[str, Any], session_cls: Any) -> None:
        super().__init__()
        self.om, self.device_ids = om, list(device_ids)
        self.precision = artifact_precision(om)  # how atc compiled it (metadata.yaml beside the .om)
        handles: list[SharedSession] = []
        try:
            for device_id in self.device_ids:
                handles.append(acquire(session_cls, om, device_id))
        except BaseException:
            release_all(handles)
            raise
        self._handles = handles
        self._finalizer = weakref.finalize(self, release_all, list(handles))
        self._idle: queue.SimpleQueue[SharedSession] = queue.SimpleQueue()
        for handle in handles:
            self._idle.put(handle)

        desc = handles[0].session.get_inputs()[0]
        shape = tuple(int(d) for d in desc.shape)
        if len(shape) != 4 or any(d < 0 for d in shape[1:]):
            self.close()
            raise ModelFormatError(
                f"{om} takes input shape {list(shape)}; yolo_adapters runs NCHW .om files with a fixed HxW "
                "(static, or a dynamic batch built with --dynamic_batch_size)."
            )
        self.input_shape = shape
        dtype = dtype_of(desc)
        per_item = int(desc.realsize) // max(int(np.prod(shape[1:])) * (shape[0] if shape[0] > 0 else 1), 1)
        self.input_dtype = dtype or np.dtype({2: np.float16, 4: np.float32}.get(per_item, np.float32))
        self._sample_bytes = int(np.prod(shape[1:])) * self.input_dtype.itemsize
        self.gears = self._find_gears(options, handles[0].session) if shape[0] < 0 else (shape[0],)
        requested = options.get("imgsz")
        if requested:
            h, w = (requested, requested) if isinstance(requested, int) else tuple(int(v) for v in requested)
            if (h, w) != shape[2:]:
                self.close()
                raise ModelFormatError(
                    f"{om} was compiled for {shape[2]}x{shape[3]} images but imgsz={[h, w]} was requested. "
                    f"Pass imgsz={[shape[2], shape[3]]}, or recompile it with atc --input_shape=images:"
                    f"{shape[0]},3,{h},{w} (or pass the .pt and yolo_adapters converts it for imgsz={[h, w]})."
                )

    @property
    def dynamic(self) -> bool:
        """Only the batch can be dynamic in an .om run here; H and W are fixed (see class docstring)."""
        return False

    def _find_gears(self, options: Mapping[str, Any], session: Any) -> tuple[int, ...]:
        from yolo_adapters.core.model_info import read_metadata_yaml

        gears = options.get("dynamic_batch_sizes") or (read_metadata_yaml(self.om.parent).get("ascend") or {}).get(
            "dynamic_batch_sizes"
        )
        if gears:
            return tuple(sorted(int(g) for g in gears))
        get_max = getattr(session, "get_max_dym_batchsize", None)
        if callable(get_max):
            return (int(get_max()),)  # the largest gear always exists; smaller ones are unknown
        raise ModelFormatError(f"{self.om} has a dynamic batch; pass dynamic_batch_sizes=(...) as atc was given them.")

    # -- inference -----------------------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(batch, dtype=self.input_dtype)  # the session converts nothing
        if tuple(x.shape[1:]) != self.input_shape[1:]:
            raise ModelFormatError(f"{self.om} takes {list(self.input_shape)} inputs, got {list(x.shape)}.")
        if self.input_shape[0] > 0:
            return self._run(x, "static")
        parts: list[list[np.ndarray]] = []
        biggest = self.gears[-1]
        for start in range(0, x.shape[0], biggest):
            chunk = x[start : start + biggest]
            real = chunk.shape[0]
            gear = next(g for g in self.gears if g >= real)
            if gear > real:
                chunk = np.concatenate([chunk, np.zeros((gear - real, *chunk.shape[1:]), chunk.dtype)])
            parts.append([o[:real] for o in self._run(np.ascontiguousarray(chunk), "dymbatch")])
        return parts[0] if len(parts) == 1 else [np.concatenate(outs) for outs in zip(*parts)]

    def _run(self, x: np.ndarray, mode: str) -> list[np.ndarray]:
        if x.nbytes != self._sample_bytes * x.shape[0]:  # guard: a wrong-sized feed is garbage on a card
            raise ModelFormatError(f"feed of {x.nbytes} bytes does not match {self.om}'s input size")
        handle = self._idle.get()  # blocks until a session is free
        try:
            with handle.lock:  # the session may be shared with other engines on the same .om and NPU
                self._count()
                outputs = handle.session.infer([x], mode=mode)
        finally:
            self._idle.put(handle)
        return [np.asarray(o) for o in outputs]

    def summary(self) -> list[Any]:
        """ais_bench's timing summary per session (``summary()``, or ``sumary()`` in older builds)."""
        found = []
        for handle in self._handles:
            call = getattr(handle.session, "summary", None) or getattr(handle.session, "sumary", None)
            found.append(call() if callable(call) else None)
        return found

    def close(self) -> None:
        """Release this engine's sessions; the last engine using a session calls its free_resource()."""
        self._finalizer()
