"""Static-shape engines at the shape Ultralytics' rect letterbox gives a source.

A static engine (every Ascend ``.om``, OpenVINO on GPU/NPU, ``dynamic=False``) is compiled for one input shape. Left
at the square ``imgsz``, every frame is padded to it, while PyTorch letterboxes a 1280x720 frame to 384x640 ("rect")
and answers differently near the padding. A ``ShapeBook`` holds one engine per shape of one model and decides which
shapes exist: the predictor letterboxes rect (``rect_letterbox``) when the book admits the batch's shape, square
otherwise. The decision is shared by every engine; a plugin only says how many shapes it affords
(``BackendPlugin.shape_budget``: each is a conversion, and 0 keeps its static models square).
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from yolo_adapters.errors import ModelFormatError, OptionError

if TYPE_CHECKING:
    from yolo_adapters.backends.base import Engine

LOGGER = logging.getLogger(__name__)

Shape = tuple[int, int]

#: Set while the predictor letterboxes a batch its model's book admitted: the EngineModule then reads as dynamic,
#: so Ultralytics' own ``pre_transform`` letterboxes rect (its ``auto=True``), with its own conditions.
_RECT: contextvars.ContextVar[bool] = contextvars.ContextVar("yolo_adapters_rect", default=False)
#: Set by the predictor's ``setup_model`` wrapper: a model built now serves a predictor (rect), not a validator.
PREDICTOR: contextvars.ContextVar[bool] = contextvars.ContextVar("yolo_adapters_predictor", default=False)


def rect_letterbox_active() -> bool:
    """Whether the batch being letterboxed in this thread is letterboxed rect for a static engine."""
    return _RECT.get()


@contextlib.contextmanager
def _raised(flag: contextvars.ContextVar[bool]) -> Iterator[None]:
    token = flag.set(True)
    try:
        yield
    finally:
        flag.reset(token)


def rect_letterbox() -> contextlib.AbstractContextManager[None]:
    """Letterbox the batch in this block rect, for a static engine whose shape book admitted its shape."""
    return _raised(_RECT)


def for_predictor() -> contextlib.AbstractContextManager[None]:
    """Models built in this block serve a predictor (``PREDICTOR``)."""
    return _raised(PREDICTOR)


def parse_shapes(value: Iterable) -> tuple[Shape, ...]:
    """``shapes=[(384, 640), (640, 480)]`` (height, width) checked and normalised; also "384x640" strings."""
    shapes: list[Shape] = []
    for item in value:
        if isinstance(item, str):
            parts = item.lower().replace(",", "x").split("x")
        else:
            parts = list(item) if isinstance(item, (list, tuple)) else [item]
        try:
            h, w = (int(p) for p in parts)
        except (TypeError, ValueError):
            raise OptionError(
                f"shapes entry {item!r}: give (height, width) pairs, e.g. shapes=[(384, 640)] or '384x640'."
            ) from None
        if h <= 0 or w <= 0:
            raise OptionError(f"shapes entry {item!r}: height and width must be positive.")
        if (h, w) not in shapes:
            shapes.append((h, w))
    if not shapes:
        raise OptionError("shapes=[] pins no shape at all: give at least one (height, width), or leave shapes out.")
    return tuple(shapes)


class ShapeError(ModelFormatError):
    """A frame needs an input shape the pinned ``shapes`` leave out."""


class ShapeBook:
    """The engines of one static model, one per input shape, and the rule for adding shapes.

    ``square`` is the model's ``imgsz`` (what Ultralytics letterboxes to when it does not letterbox rect);
    ``build(shape)`` makes the engine for a shape (a conversion, cached like any other); ``pinned``, when given, is
    every shape there may be (no conversion at run time beyond them); otherwise shapes are added on demand, at most
    ``budget`` besides the square one; an image-mode source's shape once ``min_frames`` frames needed it."""

    def __init__(
        self,
        square: Shape,
        build: Callable[[Shape], Engine],
        *,
        budget: int,
        min_frames: int,
        pinned: tuple[Shape, ...] | None = None,
        engines: dict[Shape, Engine] | None = None,
        cached: Callable[[Shape], bool] | None = None,
    ) -> None:
        self.square = square
        self.budget = max(int(budget), 0)
        self.min_frames = max(int(min_frames), 1)
        self.pinned = pinned
        self._build = build
        self._engines: dict[Shape, Engine] = dict(engines or {})
        self._admitted: set[Shape] = set(self._engines) | set(pinned or ())
        self._refused: set[Shape] = set()
        self._seen: collections.Counter[Shape] = collections.Counter()
        self._cached = cached or (lambda shape: False)
        self._was_cached: dict[Shape, bool] = {}
        self._lock = threading.Lock()
        #: frame shape (h, w, c) -> the shape Ultralytics' rect letterbox gives it (learnt by the predictor wrapper)
        self.letterboxed: dict[tuple[int, ...], Shape] = {}

    @property
    def engines(self) -> dict[Shape, Engine]:
        with self._lock:
            return dict(self._engines)

    @property
    def shapes(self) -> list[Shape]:
        """The shapes admitted so far (built or to be built on their first batch)."""
        with self._lock:
            return sorted(self._admitted)

    def square_allowed(self) -> bool:
        return self.pinned is None or self.square in self.pinned

    def admit(self, shape: Shape, frames: int, uniform: bool) -> bool:
        """Whether a batch Ultralytics letterboxes rect to ``shape`` runs at that shape (else square).

        ``uniform``: the source's frames share one size (a video, a stream, a same-size list, a batch of several
        frames of one size), so its shape is compiled from the first frame; other sources (files, a folder, one
        in-memory image per call) bring ``min_frames`` frames of a shape first (about the frames whose saving pays
        for the conversion), unless its conversion is cached already."""
        if shape == self.square:
            if self.square_allowed():
                return True
            raise self._pinned_error(shape)
        with self._lock:
            if shape in self._admitted:
                return True
            if self.pinned is not None:
                if self.square in self.pinned:
                    return False
                raise self._pinned_error(shape)
            if shape in self._refused:
                return False
            self._seen[shape] += frames
            if not uniform and self._seen[shape] < self.min_frames and not self._in_cache(shape):
                return False
            if len(self._admitted - {self.square}) >= self.budget:
                self._refused.add(shape)
                LOGGER.info(
                    "Frames letterboxed to %dx%d run on the %dx%d engine: this model has %d rect shapes already "
                    "(max_shapes=%d; pin them with shapes=[...])",
                    *shape,
                    *self.square,
                    len(self._admitted - {self.square}),
                    self.budget,
                )
                return False
            self._admitted.add(shape)
            return True

    def _in_cache(self, shape: Shape) -> bool:
        """Whether ``shape``'s conversion exists already (asked once per shape): then it costs no conversion."""
        if shape not in self._was_cached:
            self._was_cached[shape] = bool(self._cached(shape))
        return self._was_cached[shape]

    def _pinned_error(self, shape: Shape) -> ShapeError:
        pinned = ", ".join(f"({h}, {w})" for h, w in self.pinned or ())
        h, w = shape
        return ShapeError(
            f"A frame letterboxes to {h}x{w} (height x width), which shapes=[{pinned}] leaves out. Add ({h}, {w}) to "
            f"shapes (and convert it ahead: yolo-adapters convert MODEL --shapes {h}x{w}), or add the square "
            f"{self.square} so that such frames run square."
        )

    def engine(self, shape: Shape) -> Engine | None:
        """The engine for input ``shape``, built on first use; None for a shape this book does not serve."""
        with self._lock:
            engine = self._engines.get(shape)
            if engine is not None:
                return engine
            if shape not in self._admitted and not (shape == self.square and self.square_allowed()):
                return None
            LOGGER.info("Building the %dx%d engine of this static model (one conversion, cached)", *shape)
            engine = self._build(shape)
            self._engines[shape] = engine
            self._admitted.add(shape)
            return engine
