"""INT8 with NNCF on an OpenVINO IR: plain post-training quantization, or quantization under accuracy control.

The NNCF side of ``precision="int8"`` on the openvino backend (``NNCFQuantizer``, the engine steps of
``quantize.int8.Quantizer.run``): the NNCF settings, the float scope handed to ``nncf.IgnoredScope``, the target's
recipe (``int8_target``), accuracy control's validation functions (Ultralytics' validator on the compiled candidate
model NNCF hands it, or, for pose without labels, keypoint agreement with FP32 at the same anchors) and the saved
IR. ``nncf`` and ``openvino`` are imported inside the functions, and
``nncf.quantize`` / ``nncf.quantize_with_accuracy_control`` are looked up when called.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from yolo_adapters.backends.openvino.engine import OpenVINOEngine, core
from yolo_adapters.core.cpu import ISA_LEVELS, cpu_flags, cpu_isa  # noqa: F401 - re-exported for its users
from yolo_adapters.errors import OptionError
from yolo_adapters.integration.module import EngineModule
from yolo_adapters.quantize.calibration import LABELS_NEEDED, labelled, preprocess
from yolo_adapters.quantize.int8 import Int8Job, Quantizer
from yolo_adapters.quantize.plan import plan_facts
from yolo_adapters.quantize.report import labelled_metrics, same_anchor_keypoint_distance

if TYPE_CHECKING:
    from yolo_adapters.backends.base import ExportPlan

#: NNCF's preset (``nncf.QuantizationPreset.MIXED`` in ``quantize_arguments``): in the report and the cache key.
PRESET = "mixed"
#: The metric accuracy control keeps (Ultralytics' validator keys): the task's own mAP50-95, top-1 for classify.
CONTROL_METRIC = {
    "detect": "metrics/mAP50-95(B)",
    "segment": "metrics/mAP50-95(M)",
    "pose": "metrics/mAP50-95(P)",
    "obb": "metrics/mAP50-95(B)",
    "classify": "metrics/accuracy_top1",
}


class NNCFQuantizer(Quantizer):
    """NNCF's steps of the shared INT8 flow (``quantize.int8.Quantizer.run``) on an OpenVINO IR: plain
    ``nncf.quantize``, or accuracy control (``max_drop``, ``max_keypoint_px``); the IR saved into a sibling
    ``*_int8_openvino_model/`` folder with the metadata Ultralytics wrote beside the FP32 one."""

    label = "NNCF"
    # A pose head's keypoint branch stays in float on every target: its convolutions carried much of the keypoint
    # error for little of INT8's speed (docs/quantization.md).
    keypoint_branch_in_float = True

    def read(self, fp32: Path) -> Any:
        return core().read_model(str(fp32))  # the process's one Core (its plugins are costly to load)

    def int8_path(self, fp32: Path) -> Path:
        folder = fp32.parent
        return folder.with_name(folder.name.replace("_openvino_model", "") + "_int8_openvino_model") / fp32.name

    def quantize_graph(self, job: Int8Job) -> tuple[Any, dict[str, Any] | None]:
        import nncf

        settings, recipe = job.settings, plan_target(job.plan)["recipe"]
        dataset = nncf.Dataset(job.batches, job.progress)
        with nncf_off_stdout():  # convert's stdout is the artifact path only
            if settings.get("max_drop") is not None:
                return _quantize_with_accuracy_control(nncf, dataset, job, recipe)
            if settings.get("max_keypoint_px") is not None:
                return _quantize_with_keypoint_control(nncf, dataset, job, recipe)
            quantized = nncf.quantize(
                job.model,
                dataset,
                **quantize_arguments(nncf, fast=bool(settings.get("fast_bias_correction")), recipe=recipe),
                subset_size=len(job.batches),
                ignored_scope=nncf.IgnoredScope(names=job.ignored, validate=False),
            )
        return quantized, None

    def save(self, quantized: Any, job: Int8Job) -> None:
        import openvino as ov

        ov.save_model(quantized, str(job.int8), compress_to_fp16=False)
        for extra in job.fp32.parent.iterdir():  # metadata.yaml and anything else Ultralytics wrote beside the IR
            if extra.suffix not in (".xml", ".bin") and extra.is_file():
                shutil.copy2(extra, job.int8.parent / extra.name)

    def describe(self, quantized: Any, job: Int8Job) -> dict[str, Any]:
        import nncf

        target = plan_target(job.plan)
        quantizers = count_fake_quantize(quantized)
        return {
            "tool": f"nncf {nncf.__version__}",
            "preset": PRESET,
            "target": target,
            "settings": {
                **RECIPES[target["recipe"]],
                "activation_ranges": "minmax",
                "fast_bias_correction": bool(job.settings.get("fast_bias_correction")),
                "keypoint_branch": "float" if job.keypoints else None,
            },
            "fake_quantize": quantizers,
            "quantizers": quantizers,
        }

    def remove_fp32(self, fp32: Path) -> None:
        shutil.rmtree(fp32.parent, ignore_errors=True)


@contextlib.contextmanager
def nncf_off_stdout() -> Iterator[None]:
    """NNCF logs an INFO line for every node it leaves unquantized and draws its progress bars on stdout, where
    ``yolo-adapters convert`` prints only the artifact path (``xml=$(yolo-adapters convert ...)``). While it runs:
    its log at WARNING, and its log and bars on stderr."""
    logger = logging.getLogger("nncf")
    level = logger.level
    handlers = [h for h in logger.handlers if isinstance(h, logging.StreamHandler) and h.stream is not sys.stderr]
    streams = [h.setStream(sys.stderr) for h in handlers]
    logger.setLevel(max(level, logging.WARNING))
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        logger.setLevel(level)
        for handler, stream in zip(handlers, streams):
            if stream is not None:
                handler.setStream(stream)


def quantize_arguments(nncf: Any, fast: bool = False, recipe: str = "vnni") -> dict[str, Any]:
    """The NNCF settings for ``recipe`` (``RECIPES``; measured on yolo11n-pose, docs/quantization.md): MIXED
    preset, full bias correction and plain min/max activation ranges, and

    - ``vnni`` (CPUs with AMX, AVX512-VNNI or AVX-VNNI, and GPUs/NPUs): the transformer model type (attention-aware
      quantizer placement, residual Adds left in float) and NNCF's default overflow fix (first layer only);
    - ``no_vnni`` (AVX2 and AVX-512 CPUs without VNNI): NNCF's default (CNN) quantizer placement, whose quantized
      residual Adds and split inputs kept keypoints 2x closer to FP32 on these CPUs (docs/quantization.md)."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    if recipe not in RECIPES:
        raise ValueError(f"unknown INT8 recipe {recipe!r}; known: {', '.join(RECIPES)}")
    arguments: dict[str, Any] = {
        "preset": nncf.QuantizationPreset.MIXED,
        "fast_bias_correction": fast,
        "advanced_parameters": AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX
        ),
    }
    if RECIPES[recipe]["model_type"] == "transformer":
        arguments["model_type"] = nncf.ModelType.TRANSFORMER
    return arguments


# -- the target's instruction set ---------------------------------------------------------------------------
#: The NNCF settings that differ by target (``quantize_arguments``), as the report shows them.
RECIPES: dict[str, dict[str, Any]] = {
    "vnni": {"model_type": "transformer", "overflow_fix": "first_layer_only"},
    "no_vnni": {"model_type": "cnn (nncf default)", "overflow_fix": "first_layer_only"},
}


#: ISA levels (``core.cpu.ISA_LEVELS``) whose int8 kernels sum in 32 bits: they get the "vnni" recipe.
VNNI_ISAS = ("amx", "avx512_vnni", "avx_vnni")


def plan_target(plan: ExportPlan) -> dict[str, str]:
    """The INT8 target the plugin's ``precision_facts`` recorded in ``plan`` (this host's CPU when none was)."""
    facts = plan_facts(plan)
    target: dict[str, str] = {key: str(facts[key]) for key in ("device", "isa", "recipe") if key in facts}
    return target if len(target) == 3 else int8_target("CPU")


def int8_target(device: str) -> dict[str, str]:
    """What the INT8 recipe depends on, for the cache key and the report: the device family, the CPU's ISA level
    (``cpu_isa``) for a CPU target (a virtual device counts as CPU, the conservative choice), and the recipe."""
    family = device.split(":")[0].split(".")[0].upper() or "CPU"
    if family in ("GPU", "NPU"):
        return {"device": family, "isa": family.lower(), "recipe": "vnni"}
    isa = cpu_isa(cpu_flags())  # this module's name: tests replace it to take another ISA's path
    return {"device": family, "isa": isa, "recipe": "vnni" if isa in VNNI_ISAS else "no_vnni"}


def _quantize_with_accuracy_control(
    nncf: Any, calibration: Any, job: Int8Job, recipe: str = "vnni"
) -> tuple[Any, dict[str, Any]]:
    """``nncf.quantize_with_accuracy_control`` with the settings above; its validation function is the task's
    metric (``CONTROL_METRIC``) from Ultralytics' validator on the labelled held-back images."""
    model, fp32_xml, info, held, shape, plan = job.model, job.fp32, job.info, job.held, job.shape, job.plan
    settings, ignored, task = job.settings, job.ignored, job.task
    if task not in CONTROL_METRIC:
        raise OptionError(
            f"max_drop controls a validator metric, and yolo_adapters wires none for {task} models "
            f"(it does for {', '.join(CONTROL_METRIC)}): leave max_drop out; the report still compares INT8 with FP32."
        )
    images = labelled(held, task, info.names)
    if not images:
        raise OptionError(f"max_drop needs labels for the held-back images ({len(held)}): give {LABELS_NEEDED}.")
    metric = CONTROL_METRIC[task]
    hw, batch = (int(shape[2]), int(shape[3])), int(shape[0])
    calls = tqdm(desc=f"yolo_adapters: accuracy control ({metric} on {len(images)} images)", unit="validation")
    values: list[float] = []

    def transform(index: int) -> np.ndarray:  # a validation item as model input (NNCF ranks layers with it)
        return np.stack([preprocess(images[index], hw, task, info.stride or 32)] * batch)

    def measure(compiled: Any, chosen: Sequence[Path] = images) -> float:
        return float(labelled_metrics(_compiled_adapter(compiled, info, fp32_xml), chosen, task, plan.imgsz)[metric])

    def validate(compiled: Any, items: Iterable[int]) -> tuple[float, None]:  # NNCF's: counted
        value = measure(compiled, [images[int(i)] for i in items])
        calls.update()
        values.append(value)
        return value, None

    max_drop = float(settings["max_drop"])
    try:
        quantized, weights = _accuracy_control(
            nncf,
            model,
            calibration,
            len(images),
            transform,
            validate,
            max_drop,
            settings,
            ignored,
            recipe,
            measure,
            within=lambda value: values[0] - value <= max_drop,  # values[0]: NNCF validates FP32 first
        )
    finally:
        calls.close()
    control = {
        "max_drop": max_drop,
        "drop_type": "absolute",
        "metric": metric,
        "images": len(images),
        "validations": len(values),
        "fake_quantize_left": count_fake_quantize(quantized),
        **weights,
    }
    return quantized, control


def _accuracy_control(
    nncf: Any,
    model: Any,
    calibration: Any,
    items: int,
    transform: Any,
    validate: Any,
    max_drop: float,
    settings: Mapping[str, Any],
    ignored: list[str],
    recipe: str,
    measure: Any,
    within: Any,
) -> tuple[Any, dict[str, Any]]:
    """``nncf.quantize_with_accuracy_control`` with the recipe's settings and float scope, validating on ``items``
    held-back images (``transform`` makes item i a model input, ``validate`` is NNCF's validation function), then
    the model to save (``_validated_int8_weights``: ``measure(compiled)`` is one whole validation, ``within(value)``
    whether it meets the limit) and what its int8 weights measured."""
    from nncf.openvino.quantization.backend_parameters import BackendParameters

    arguments = quantize_arguments(nncf, fast=bool(settings.get("fast_bias_correction")), recipe=recipe)
    advanced = arguments.pop("advanced_parameters")
    advanced.backend_params[BackendParameters.COMPRESS_WEIGHTS] = False  # int8 weights: _validated_int8_weights
    arguments["advanced_quantization_parameters"] = advanced
    validated = nncf.quantize_with_accuracy_control(
        model,
        calibration_dataset=calibration,
        validation_dataset=nncf.Dataset(list(range(items)), transform),
        validation_fn=validate,
        max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE,
        subset_size=int(calibration.get_length() or 1),
        ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
        **arguments,
    )
    return _validated_int8_weights(validated, measure, within)


def _compile_f32(model: Any) -> Any:
    """A candidate compiled as NNCF validates it and as INT8 runs: f32 for whatever is not int8."""
    return core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def _validated_int8_weights(validated: Any, measure: Any, within: Any) -> tuple[Any, dict[str, Any]]:
    """The accuracy-controlled model to save, with int8 weights only if they still meet the limit.

    NNCF validates its candidates with fake-quantized float weights and stores the weights as int8 only after the
    last validation (OpenVINO's compress_quantize_weights). On an AMX host that step alone moved the same-anchor
    keypoint distance from 0.99 to 1.06 px (limit 1.0), so the limit held for a model that was not the one saved.
    The int8 weights are measured again; if they miss the limit, the model NNCF validated is saved as it is (about
    3x the file size, 2% slower here)."""
    from openvino._offline_transformations import compress_quantize_weights_transformation

    compressed = validated.clone()
    compress_quantize_weights_transformation(compressed)
    value = measure(_compile_f32(compressed))
    kept = bool(within(value))
    return (compressed if kept else validated), {"int8_weights": kept, "int8_weights_value": value}


#: NNCF's accuracy control compares metrics, and computes a relative drop even when asked for an absolute one (a
#: division by the FP32 metric): keypoint agreement is given to it as this constant minus the distance in pixels.
_AGREEMENT_CEILING = 100.0


def _quantize_with_keypoint_control(
    nncf: Any, calibration: Any, job: Int8Job, recipe: str
) -> tuple[Any, dict[str, Any]]:
    """Accuracy control without labels, for pose: NNCF reverts quantizers to float until the keypoints at the same
    anchor (every anchor FP32 scores >= 0.5, before NMS) are on average within ``max_keypoint_px`` model-input
    pixels of the FP32 model's own, on the held-back images. The same-anchor distance moves smoothly with what is
    quantized; the distance after NMS jumps when a near-tied neighbouring anchor wins (docs/quantization.md)."""
    model, info, held, shape, task = job.model, job.info, job.held, job.shape, job.task
    settings, ignored = job.settings, job.ignored
    if task != "pose" or not info.kpt_shape:
        raise OptionError(
            f"max_keypoint_px is accuracy control on keypoints, for pose models; this one is {task}: "
            "use max_drop with a labelled dataset instead."
        )
    hw = (int(shape[2]), int(shape[3]))
    inputs = [np.stack([preprocess(p, hw, task, info.stride or 32)] * int(shape[0])) for p in held]
    fp32 = _compile_f32(model)
    references = [np.asarray(fp32(x)[0])[0] for x in inputs]
    chosen = [
        i
        for i, ref in enumerate(references)
        if same_anchor_keypoint_distance(ref, ref, len(info.names), info.kpt_shape) is not None
    ]
    if not chosen:
        raise OptionError(
            f"max_keypoint_px needs held-back images in which the FP32 model finds a person with "
            f"conf >= 0.5; none of the {len(held)} held-back images has one: add such images or "
            "raise holdout."
        )
    limit = float(settings["max_keypoint_px"])
    calls = tqdm(desc=f"yolo_adapters: accuracy control (keypoints on {len(chosen)} images)", unit="validation")
    seen: list[float] = []

    def distances(compiled: Any, items: Iterable[int]) -> list[float]:
        out = []
        for item in items:
            i = chosen[int(item)]
            raw = np.asarray(compiled(inputs[i])[0])[0]
            out.append(float(same_anchor_keypoint_distance(references[i], raw, len(info.names), info.kpt_shape) or 0))
        return out

    def measure(compiled: Any) -> float:
        return float(np.mean(distances(compiled, range(len(chosen)))))

    def validate(compiled: Any, items: Iterable[int]) -> tuple[float, list[float]]:  # NNCF's: counted
        values = [_AGREEMENT_CEILING - d for d in distances(compiled, items)]
        calls.update()
        if len(values) == len(chosen):  # a whole validation (NNCF also calls it per image, to rank)
            seen.append(_AGREEMENT_CEILING - float(np.mean(values)))
        return float(np.mean(values)), values

    try:
        quantized, weights = _accuracy_control(
            nncf,
            model,
            calibration,
            len(chosen),
            lambda item: inputs[chosen[item]],
            validate,
            limit,
            settings,
            ignored,
            recipe,
            measure,
            within=lambda distance: distance <= limit,
        )
    finally:
        calls.close()
    validations = int(calls.n)  # NNCF's calls: whole validations, and one per image while it ranks quantizers
    after = weights["int8_weights_value"] if weights["int8_weights"] else measure(_compile_f32(quantized))
    control = {
        "max_keypoint_px": limit,
        "metric": "keypoint distance to FP32 at the same anchor, model-input px",
        "images": len(chosen),
        "validations": validations,
        # NNCF validates the FP32 model first (distance 0: the same outputs as the reference), then INT8
        "keypoint_px_before": next((v for v in seen if v > 0), after),
        "keypoint_px": after,
        "fake_quantize_left": count_fake_quantize(quantized),
        **weights,
    }
    return quantized, control


def _compiled_adapter(compiled: Any, info: Any, artifact: Path) -> Any:
    """NNCF's compiled candidate as the EngineModule Ultralytics' validator runs."""
    return EngineModule(OpenVINOEngine.from_compiled(compiled), info, "openvino", "CPU", artifact, pipeline=False)


def count_fake_quantize(model: Any) -> int:
    """Activation quantizers: FakeQuantize ops on a computed tensor. A weight's FakeQuantize (on a constant; NNCF
    folds them into int8 weights, which an accuracy-controlled model may keep unfolded) is not counted."""
    return sum(
        op.get_type_name() == "FakeQuantize" and op.input_value(0).get_node().get_type_name() != "Constant"
        for op in model.get_ops()
    )
