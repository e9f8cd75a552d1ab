"""Ascend parity at the default precision="fp32": every task on a 910B (FP32 throughout, the shared tolerances) and on
a 310P (FP16 matrix inputs, its mode's tolerances), and the dynamic-batch .om.

The Ascend backend against the emulated ais_bench / atc / npu-smi (yolo_adapters.testing): no card here, so every test
that runs a model asserts that the emulated InferSession really ran it (its recorded calls).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.ascend import assert_parity, engine_of, predict
from yolo_adapters.backends.ascend import tolerances
from yolo_adapters.compare.parity import DEFAULT_TOLERANCES
from yolo_adapters.testing.om_format import read_om

TASKS = ("detect", "segment", "pose", "obb", "classify")


# -- parity --------------------------------------------------------------------------------------------------
def _check_static_run(model, emu, images, soc):
    adapter = model.predictor.model
    assert adapter.format == "ascend" and adapter.artifact.suffix == ".om"
    header, _ = read_om(adapter.artifact)
    assert header.input_shape == [1, 3, 640, 640] and header.soc_version == soc
    infers = emu.of("infer")
    assert len(infers) == len(images) and engine_of(model).calls == len(images)
    for event in infers:  # the session contract: a list of C-contiguous float32 arrays of the input's byte size
        assert event["container"] == "list" and event["mode"] == "static"
        feed = event["feeds"][0]
        assert feed["type"] == "ndarray" and feed["dtype"] == "float32" and feed["c_contiguous"]
        assert feed["nbytes"] == 3 * 640 * 640 * 4
    assert (adapter.artifact.parent / "metadata.yaml").is_file()
    return header


def _default_precision_parity(task, emu, checkpoints, images, square_references, soc):
    """precision="fp32" (the default) on ``soc``: the mode chosen for it, and parity at that mode's tolerances."""
    model, results = predict(checkpoints[task], images)
    precision = engine_of(model).precision
    assert_parity(square_references(task), results, tolerances(precision.kind))
    header = _check_static_run(model, emu, images, soc)
    assert (header.precision_flag, header.precision_mode) == (precision.flag, precision.mode)
    return precision, header


@pytest.mark.compat_parity
@pytest.mark.parametrize("task", TASKS)
def test_parity_every_task(task, emu_fp32, checkpoints, images, square_references):
    """precision="fp32" on a 910B: FP32 throughout, at the shared tolerances."""
    precision, _ = _default_precision_parity(task, emu_fp32, checkpoints, images, square_references, "Ascend910B3")
    assert precision.label() == "--precision_mode_v2=origin" and tolerances("origin") == DEFAULT_TOLERANCES


@pytest.mark.parametrize("task", TASKS)
def test_fp32_on_310p_matches_pytorch(task, emu, checkpoints, images, square_references):
    """precision="fp32" on a 310P (the default): FP16 matrix inputs, FP32 accumulation and everything else."""
    precision, header = _default_precision_parity(task, emu, checkpoints, images, square_references, "Ascend310P3")
    assert precision.label() == "--precision_mode_v2=cube_fp16in_fp32out"
    assert header.arithmetic == {"matrix_inputs": "fp16", "matrix_outputs": "fp32", "other_ops": "fp32"}


@pytest.mark.compat_parity
def test_dynamic_batch(emu_fp32, checkpoints, images, square_references):
    emu = emu_fp32
    model, results = predict(checkpoints["detect"], images, dynamic=True, predict_args={"batch": 2})
    assert_parity(square_references("detect"), results, tolerances("origin"))
    header, _ = read_om(model.predictor.model.artifact)
    assert header.input_shape == [-1, 3, 640, 640] and header.dynamic_batch_sizes == [1, 2, 4, 8]
    infers = emu.of("infer")
    assert [e["mode"] for e in infers] == ["dymbatch"] and infers[0]["feeds"][0]["shape"][0] == 2
    # 3 images -> padded to the 4 gear, padding dropped from the outputs
    engine = engine_of(model)
    outs = engine.infer(np.zeros((3, 3, 640, 640), np.float32))
    assert outs[0].shape[0] == 3 and emu.of("infer")[-1]["feeds"][0]["shape"][0] == 4
