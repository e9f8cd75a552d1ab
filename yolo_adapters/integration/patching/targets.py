"""Patch points per Ultralytics version (read from 8.1.47, 8.2.48, 8.3.0, 8.4.20 and 8.4.190 wheels).

In every supported version the predictor's ``setup_model`` and the validator's ``__call__`` look up
``AutoBackend`` and ``select_device`` in their own module at call time. Wrapping those two names in those
two modules swaps the engine for predict, stream, track and val, and leaves training and export alone.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Oldest and newest Ultralytics releases the patches were verified against.
MIN_TESTED = (8, 1, 0)
MAX_TESTED = (8, 4, 190)


@dataclass(frozen=True)
class PatchTarget:
    module: str  # module whose global names are wrapped
    owner: str  # "Class.method" that must still call those names (the shape guard)
    names: tuple[str, ...] = ("select_device", "AutoBackend")
    #: methods of the owner's class wrapped on the class ("Class.method"); owner must also read them
    methods: tuple[str, ...] = ()
    #: an optional speed-up: when it does not fit, log at INFO and leave the rest of the patch layer on
    optional: bool = False


TARGETS: tuple[PatchTarget, ...] = (
    # setup_model itself is wrapped too: once our model is built, the predictor's task must be the model's.
    PatchTarget("ultralytics.engine.predictor", "BasePredictor.setup_model", methods=("BasePredictor.setup_model",)),
    PatchTarget("ultralytics.engine.validator", "BaseValidator.__call__"),
    # The stream pipeline (yolo_adapters.integration.pipeline): the stream is driven with the pipeline active, its source is
    # read ahead (in-memory lists and tensors as engine-sized batches), and the tensor made ahead is handed to the
    # loop (every supported release: their stream_inference calls setup_source and preprocess).
    PatchTarget(
        "ultralytics.engine.predictor",
        "BasePredictor.stream_inference",
        names=(),
        methods=("BasePredictor.stream_inference", "BasePredictor.preprocess", "BasePredictor.setup_source"),
        optional=True,
    ),
    # Batches cut from an in-memory list of mixed shapes keep the whole list's (square) letterbox.
    PatchTarget(
        "ultralytics.engine.predictor",
        "BasePredictor.preprocess",
        names=(),
        methods=("BasePredictor.pre_transform",),
        optional=True,
    ),
)


def parse_version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)
