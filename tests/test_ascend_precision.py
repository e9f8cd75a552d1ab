"""Ascend precision modes: the FP16 modes' parity at their published tolerances (precision.TOLERANCES_BY_KIND,
docs/ascend.md), the atc flag each option gives, and the emulated arithmetic each mode implies
(yolo_adapters.testing.numerics).

The Ascend backend against the emulated ais_bench / atc / npu-smi (yolo_adapters.testing): no card here, so every test
that runs a model asserts that the emulated InferSession really ran it (its recorded calls).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.ascend import assert_fp16_parity, assert_parity, engine_of, load_engine, predict
from yolo_adapters.backends.ascend import AscendPlugin, atc_command, tolerances
from yolo_adapters.backends.ascend.precision import FP16_OUTPUT_TOLERANCES
from yolo_adapters.errors import ConversionError, OptionError
from yolo_adapters.testing import emulate_ascend
from yolo_adapters.testing.om_format import read_om

TASKS = ("detect", "segment", "pose", "obb", "classify")


@pytest.mark.parametrize("task", TASKS)
def test_fp16_mode_matches_pytorch(task, emu, checkpoints, images, square_references):
    """precision="fp16": the whole graph in FP16 on the card (--precision_mode_v2=fp16), at its tolerances."""
    model, results = predict(checkpoints[task], images, precision="fp16")
    header, _ = read_om(model.predictor.model.artifact)
    assert (header.precision_flag, header.precision_mode) == ("precision_mode_v2", "fp16")
    assert header.arithmetic == {"matrix_inputs": "fp16", "matrix_outputs": "fp16", "other_ops": "fp16"}
    assert engine_of(model).precision.mode == "fp16"
    assert_fp16_parity(task, square_references(task), results, tolerances("fp16"))


@pytest.mark.parametrize("task", ["detect", "pose"])
def test_allow_fp32_to_fp16_matches_pytorch(task, emu, checkpoints, images, square_references):
    model, results = predict(checkpoints[task], images, precision_mode="allow_fp32_to_fp16")
    assert len(emu.of("infer")) == len(images)
    assert engine_of(model).precision.kind == "matrix_fp16"
    assert_parity(square_references(task), results, tolerances("matrix_fp16"))


@pytest.mark.parametrize("task", ["detect", "pose", "segment"])
def test_fp16_outputs(task, emu, checkpoints, images, square_references):
    model, results = predict(checkpoints[task], images, output_type="FP16")
    engine = engine_of(model)
    header, _ = read_om(model.predictor.model.artifact)
    assert header.output_type == "FP16"
    assert "--output_type=FP16" in emu.atc_calls()[-1]["argv"]
    raw = engine.infer(np.zeros(engine.input_shape, np.float32))
    assert all(o.dtype == np.float16 for o in raw), "the FP16 .om must hand back float16 (the runtime casts)"
    tol = tolerances("cube_fp16in_fp32out", "FP16")
    assert tol.score >= FP16_OUTPUT_TOLERANCES.score and tol.box_iou <= FP16_OUTPUT_TOLERANCES.box_iou
    assert_fp16_parity(task, square_references(task), results, tol)


# -- precision: every atc run states its mode; the emulation computes what the mode implies ---------------------
def _plan_and_argv(tmp_path, chip="310P3", v2=True, **options):
    """The ExportPlan and atc command line for ``options`` on an emulated ``chip`` whose atc does or does not
    list --precision_mode_v2."""
    with emulate_ascend(tmp_path / f"{chip}-v2-{v2}", chip=chip, precision_mode_v2=v2):
        plugin = AscendPlugin()
        plan = plugin.export_plan("0", plugin.validate_options(options), (640, 640), 1)
        return plan, atc_command(Path("m.onnx"), Path("m"), plan, dict(plan.extra))


def _precision_flags(argv):
    return [a for a in argv if a.startswith("--precision_mode")]


@pytest.mark.parametrize(
    "chip, v2, options, expected",
    [
        # precision="fp32" (the default): as much FP32 as the SoC's cube units allow
        ("310P3", True, {}, "--precision_mode_v2=cube_fp16in_fp32out"),
        ("310P3", False, {}, "--precision_mode=force_fp32"),
        ("310B4", True, {"precision": "fp32"}, "--precision_mode_v2=cube_fp16in_fp32out"),
        ("910B3", True, {}, "--precision_mode_v2=origin"),
        ("910B3", False, {}, "--precision_mode=must_keep_origin_dtype"),
        # precision="fp16": FP16 on every SoC
        ("310P3", True, {"precision": "fp16"}, "--precision_mode_v2=fp16"),
        ("310P3", False, {"precision": "fp16"}, "--precision_mode=force_fp16"),
        ("910B3", True, {"precision": "fp16"}, "--precision_mode_v2=fp16"),
        # any ATC mode passes through, with the flag it was given as
        ("310P3", True, {"precision_mode": "allow_fp32_to_fp16"}, "--precision_mode=allow_fp32_to_fp16"),
        ("310P3", False, {"precision_mode": "allow_mix_precision"}, "--precision_mode=allow_mix_precision"),
        ("910B3", True, {"precision_mode_v2": "mixed_float16"}, "--precision_mode_v2=mixed_float16"),
    ],
)
def test_atc_command_states_the_precision(tmp_path, chip, v2, options, expected):
    plan, argv = _plan_and_argv(tmp_path, chip, v2, **options)
    assert _precision_flags(argv) == [expected]
    assert argv[:7] == [
        "atc",
        "--framework=5",
        "--model=m.onnx",
        "--output=m",
        "--input_format=NCHW",
        "--input_shape=images:1,3,640,640",
        f"--soc_version=Ascend{chip}",
    ]
    extra = dict(plan.extra)
    flag, mode = expected[2:].split("=")
    assert (extra["atc_precision_flag"], extra["atc_precision_mode"]) == (flag, mode)  # part of the cache key
    assert plan.precision == "fp32"  # the ONNX atc reads stays FP32 whatever the mode


@pytest.mark.parametrize("chip", ["310P3", "310B4", "910B3"])
@pytest.mark.parametrize("v2", [True, False])
def test_fp32_and_fp16_never_compile_the_same(tmp_path, chip, v2):
    from yolo_adapters.core.cache import make_key

    fp32_plan, fp32 = _plan_and_argv(tmp_path / "a", chip, v2, precision="fp32")
    fp16_plan, fp16 = _plan_and_argv(tmp_path / "b", chip, v2, precision="fp16")
    assert _precision_flags(fp32) and _precision_flags(fp16) and _precision_flags(fp32) != _precision_flags(fp16)
    assert make_key({"plan": fp32_plan}) != make_key({"plan": fp16_plan})


def test_precision_options_that_contradict_are_refused(tmp_path):
    plugin = AscendPlugin()
    with pytest.raises(OptionError, match="cannot be combined"):
        plugin.validate_options({"precision_mode": "force_fp16", "precision_mode_v2": "fp16"})
    with pytest.raises(OptionError, match="computes everything in FP16"):
        plugin.validate_options({"precision": "fp32", "precision_mode": "force_fp16"})
    with pytest.raises(OptionError, match="keeps FP32"):
        plugin.validate_options({"precision": "fp16", "precision_mode_v2": "origin"})
    for managed in ("--precision_mode=force_fp32", "--precision_mode_v2=origin"):
        with pytest.raises(OptionError, match="set from options"):
            plugin.validate_options({"atc_args": [managed]})
    with pytest.raises(ConversionError, match="no --precision_mode_v2"):
        _plan_and_argv(tmp_path, "310P3", False, precision_mode_v2="origin")  # CANN < 7.0: atc --help lacks it


def test_fp32_that_the_soc_cannot_keep_fails_with_the_reason(tmp_path, checkpoints, images):
    """310-series cube units have no FP32: ATC cannot compile "origin" there (the emulated atc fails as ATC does)."""
    with emulate_ascend(tmp_path, chip="310P3") as emu:
        with pytest.raises(ConversionError, match="Ascend910B"):
            predict(checkpoints["detect"], images[:1], precision_mode_v2="origin")
        assert emu.atc_calls()[-1]["rc"] == 1 and "--precision_mode_v2=origin" in emu.atc_calls()[-1]["argv"]


def _letterboxed(image, size=640):
    import cv2
    from ultralytics.data.augment import LetterBox

    x = LetterBox(size, auto=False, stride=32)(image=cv2.imread(str(image)))
    return np.ascontiguousarray(x[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255


def _raw_outputs(tmp_path, checkpoints, x, chip, **options):
    with emulate_ascend(tmp_path / chip / "-".join(f"{k}{v}" for k, v in options.items()), chip=chip):
        engine = load_engine(checkpoints, **options)
        try:
            return engine.precision, [o.astype(np.float32) for o in engine.infer(x)]
        finally:
            engine.close()


def test_emulated_fp16_differs_from_fp32_by_an_fp16_sized_amount(tmp_path, checkpoints, images):
    """The emulated .om computes in the arithmetic of its mode: FP32 on a 910B ("origin") is ONNX Runtime's
    FP32; FP16 moves the raw outputs by a float16-sized amount, not zero and not more. (That the results stay
    within the published tolerances is test_parity_every_task / test_fp16_mode_matches_pytorch.)"""
    x = _letterboxed(images[0])
    exact, (fp32,) = _raw_outputs(tmp_path, checkpoints, x, "910B3")
    assert (exact.flag, exact.mode) == ("precision_mode_v2", "origin")
    cube, (mixed,) = _raw_outputs(tmp_path, checkpoints, x, "310P3")
    assert cube.mode == "cube_fp16in_fp32out"
    half, (fp16,) = _raw_outputs(tmp_path, checkpoints, x, "310P3", precision="fp16")
    assert half.mode == "fp16"
    scale = float(np.abs(fp32).max())
    d_cube, d_fp16 = float(np.abs(mixed - fp32).max()) / scale, float(np.abs(fp16 - fp32).max()) / scale
    u = 2.0**-11  # float16 unit roundoff (4.9e-4)
    assert u / 100 < d_cube < 10 * u, d_cube  # FP16 inputs of matrix ops only
    assert u / 10 < d_fp16 < 20 * u, d_fp16  # every tensor in FP16
    as_half = lambda a: a.astype(np.float16).astype(np.float32)  # noqa: E731
    assert np.array_equal(fp16, as_half(fp16))  # force_fp16: the outputs themselves are float16 values
    assert not np.array_equal(mixed, as_half(mixed))  # cube_fp16in_fp32out: FP32 results
