"""The cache key and plan of a calibrated conversion (precision="int8", and "auto" which includes it).

``int8_plan`` checks the INT8 options before any export and puts the calibration content in the key;
``with_facts`` adds what the plugin says the conversion depends on on this device (``precision_facts``: the CPU's
instruction set, the execution provider...); ``with_auto_key`` the tolerances of precision="auto".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolo_adapters.errors import OptionError
from yolo_adapters.quantize.calibration import (
    DEFAULT_CALIBRATION_SIZE,
    LABELS_NEEDED,
    data_root,
    find_images,
    images_digest,
    labelled,
    split_holdout,
)

if TYPE_CHECKING:
    from yolo_adapters.backends.base import BackendPlugin, ExportPlan

_PLAN_KEY = "yolo_adapters_int8"  # not an Ultralytics exporter argument: it only enters the cache key
FACTS_KEY = "yolo_adapters_precision_facts"  # in ExportPlan.extra: part of the cache key, not an exporter argument
AUTO_KEY = "yolo_adapters_auto"  # in ExportPlan.extra: part of the cache key, not an exporter argument


def int8_plan(plan: ExportPlan, options: Mapping[str, Any], plugin: BackendPlugin) -> ExportPlan:
    """``plan`` for precision='int8': FP32 export, plus the calibration settings (content hash in the key,
    folder path outside it). Fails here, before any export, when there is no calibration data, no quantizer,
    ``max_drop`` without labels, or accuracy control without held-back images."""
    tool = plugin.quantizer_version()
    images = find_images(options.get("calibration"))
    root = data_root(options["calibration"])
    size = int(options.get("calibration_size") or DEFAULT_CALIBRATION_SIZE)
    if size < 1:
        raise OptionError(f"calibration_size={size} must be at least 1.")
    holdout = options.get("holdout")
    if holdout is not None and holdout < 0:
        raise OptionError(f"holdout={holdout} must be >= 0.")
    max_drop = options.get("max_drop")
    if max_drop is not None and options.get("max_keypoint_px") is not None:
        raise OptionError("max_drop and max_keypoint_px are two kinds of accuracy control: give one of them.")
    if max_drop is not None:
        max_drop = float(max_drop)
        if not 0 <= max_drop < 1:
            raise OptionError(
                f"max_drop={max_drop} is an absolute metric drop (mAP50-95 or top-1 in 0..1): use e.g. 0.01."
            )
        if not plugin.accuracy_control:
            raise OptionError(
                f"max_drop (accuracy-controlled quantization) is NNCF's, on the openvino backend; the {plugin.name!r} "
                "backend quantizes with fixed settings: leave max_drop out, or use --backend openvino."
            )
        _, held = split_holdout(images, holdout)
        if not held:
            raise OptionError("max_drop needs held-back images to measure the metric on: holdout must be >= 1.")
        if not labelled(held, root=root):
            raise OptionError(
                f"max_drop needs labels for the held-back images of {options['calibration']} (none of "
                f"{', '.join(p.name for p in held[:3])}{'...' if len(held) > 3 else ''} has one): give {LABELS_NEEDED}."
            )
    max_keypoint_px = options.get("max_keypoint_px")
    if max_keypoint_px is not None:
        max_keypoint_px = float(max_keypoint_px)
        if not max_keypoint_px > 0:
            raise OptionError(
                f"max_keypoint_px={max_keypoint_px} is a keypoint distance in model-input pixels: use e.g. 1.0."
            )
        if not plugin.accuracy_control:
            raise OptionError(
                f"max_keypoint_px (accuracy-controlled quantization) is NNCF's, on the openvino backend; the "
                f"{plugin.name!r} backend quantizes with fixed settings: leave it out, or use --backend openvino."
            )
        if not split_holdout(images, holdout)[1]:
            raise OptionError("max_keypoint_px needs held-back images to measure keypoints on: holdout must be >= 1.")
    fast = bool(options.get("fast_bias_correction", False))
    key = (
        ("data", images_digest(images, root, labels=True)),
        ("size", size),
        ("holdout", holdout),
        ("fast_bias_correction", fast),
        ("max_drop", max_drop),
        ("max_keypoint_px", max_keypoint_px),
        ("tool", tool),
        ("scheme", 6),
    )
    return dataclasses.replace(
        plan,
        extra=tuple(plan.extra) + ((_PLAN_KEY, key),),
        inputs={"calibration": str(Path(options["calibration"]).expanduser().resolve())},
    )


def plan_settings(plan: ExportPlan) -> dict[str, Any]:
    settings = dict(dict(plan.extra).get(_PLAN_KEY, ()))
    settings["calibration"] = (plan.inputs or {}).get("calibration")
    return settings


def with_facts(plan: ExportPlan, facts: Mapping[str, Any]) -> ExportPlan:
    """``plan`` with the plugin's ``precision_facts`` in its key: a host that would convert otherwise converts again."""
    return dataclasses.replace(plan, extra=tuple(plan.extra) + ((FACTS_KEY, tuple(sorted(facts.items()))),))


def plan_facts(plan: ExportPlan) -> dict[str, Any]:
    """What ``with_facts`` recorded in ``plan`` (empty where nothing was)."""
    return dict(dict(plan.extra).get(FACTS_KEY, ()))


def with_auto_key(plan: ExportPlan, tolerance: Mapping[str, float]) -> ExportPlan:
    """``plan`` with precision="auto"'s tolerances in its cache key: another tolerance converts again."""
    key = (("tolerance", tuple(sorted(tolerance.items()))), ("scheme", 2))
    return dataclasses.replace(plan, extra=tuple(plan.extra) + ((AUTO_KEY, key),))


def auto_tolerance(plan: ExportPlan) -> dict[str, float]:
    """The tolerances ``with_auto_key`` put in ``plan``."""
    return dict(dict(dict(plan.extra)[AUTO_KEY])["tolerance"])
