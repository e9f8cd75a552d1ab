"""Ascend model files and toolkit: .om files and folders used as they are (Ultralytics' own export included),
what is missing when ais_bench, the CANN environment or atc is, and the stand-in's own session contract.

The Ascend backend against the emulated ais_bench / atc / npu-smi (yolo_adapters.testing): no card here, so every test
that runs a model asserts that the emulated InferSession really ran it (its recorded calls).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import yolo_adapters
from tests.support.ascend import assert_fp16_parity, assert_parity, converted_om, engine_of, predict
from yolo_adapters.backends.ascend import AscendPlugin, tolerances
from yolo_adapters.errors import BackendUnavailableError, ConversionError, ModelFormatError
from yolo_adapters.testing import emulate_ascend


# -- model files ------------------------------------------------------------------------------------------
def test_om_and_ascend_model_folder_used_as_is(emu, checkpoints, images, square_references):
    om = converted_om(checkpoints)
    atc_calls = len(emu.atc_calls())
    _, from_file = predict(om, images, task="detect")
    _, from_folder = predict(om.parent, images, task="detect")
    assert om.parent.name.endswith("_ascend_model")
    assert len(emu.atc_calls()) == atc_calls  # nothing recompiled
    assert_parity(square_references("detect"), from_file)
    assert_parity(square_references("detect"), from_folder)


def test_ultralytics_ascend_export_folder_runs_on_any_card(tmp_path, checkpoints, images, square_references):
    """Ultralytics' own format="ascend" export (8.4.x): a *_ascend_model/ folder holding <stem>_<SoC>.om, compiled
    with --precision_mode=force_fp16, and Ultralytics' metadata.yaml. Its own backend always opens NPU 0; ours
    loads the folder with its metadata on the NPU asked for. The folder is made by Ultralytics' exporter itself,
    running the stand-in atc."""
    import shutil

    from ultralytics import YOLO
    from ultralytics.engine.exporter import export_formats

    if "ascend" not in export_formats()["Argument"]:
        pytest.skip("this Ultralytics has no format='ascend' export (8.4.x adds it)")
    pt = tmp_path / "person.pt"
    shutil.copy(checkpoints["detect"], pt)
    with emulate_ascend(tmp_path / "emu", cards=2) as emu:
        folder = Path(YOLO(str(pt)).export(format="ascend", name="Ascend310P3", verbose=False))
        assert folder.name == "person_ascend_model"
        assert sorted(p.name for p in folder.iterdir()) == ["metadata.yaml", "person_Ascend310P3.om"]
        assert "--precision_mode=force_fp16" in emu.atc_calls()[-1]["argv"]
        model, results = predict(folder, images, device="ascend:1", task="detect")
        assert emu.device_ids() == [1] and emu.infer_devices() == [1] * len(images)
    engine = engine_of(model)
    assert engine.om.name == "person_Ascend310P3.om"
    assert (engine.precision.mode, engine.precision.soc, engine.precision.kind) == ("force_fp16", "Ascend310P3", "fp16")
    assert results[0].names == {0: "person"}  # from Ultralytics' metadata.yaml
    assert_fp16_parity("detect", square_references("detect"), results, tolerances("fp16"))


def test_info_shows_the_precision_mode_of_cached_models(emu, checkpoints):
    from yolo_adapters.tools.info import collect_info, format_info

    om = converted_om(checkpoints)  # precision="fp32" on the emulated 310P3
    info = collect_info()
    ascend = next(b for b in info["backends"] if b["name"] == "ascend")
    key = om.relative_to(Path(om.as_posix().split("/artifacts/")[0]) / "artifacts").parts[0]
    shown = "--precision_mode_v2=cube_fp16in_fp32out, Ascend310P3"
    assert ascend["environment"]["cached_models"][key] == shown
    assert f"{key} ({shown})" in format_info(info)


def test_om_without_metadata_needs_options(emu, checkpoints, images, square_references, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "person.om").write_bytes(converted_om(checkpoints).read_bytes())
    with pytest.raises(ModelFormatError, match="metadata.yaml"):
        predict(bare / "person.om", images, task="detect")
    _, results = predict(bare / "person.om", images, task="detect", metadata={"task": "detect"}, names=["person"])
    assert_parity(square_references("detect"), results)


def test_om_with_wrong_imgsz(emu, checkpoints, images):
    om = converted_om(checkpoints)
    with pytest.raises(ModelFormatError, match=r"compiled for 640x640 images but imgsz=\[320, 320\]"):
        predict(om, images[:1], task="detect", imgsz=320)


# -- errors -----------------------------------------------------------------------------------------------
def test_ais_bench_missing(monkeypatch, checkpoints, images):
    monkeypatch.setitem(sys.modules, "ais_bench", None)  # not importable, whatever is installed
    assert importlib.util.find_spec("ais_bench") is None
    message = AscendPlugin().missing_requirements()
    assert "not on PyPI" in message and "gitee.com/ascend/tools" in message
    with pytest.raises(BackendUnavailableError, match="gitee.com/ascend/tools"):
        yolo_adapters.activate("ascend")


def test_cann_environment_not_sourced(tmp_path, checkpoints, images):
    with emulate_ascend(tmp_path, cann_env=False):
        with pytest.raises(BackendUnavailableError, match="set_env.sh"):
            yolo_adapters.activate("ascend")


def test_atc_missing_gives_the_command_then_the_manual_om_works(tmp_path, checkpoints, images, square_references):
    with emulate_ascend(tmp_path, cards=1, atc=False) as emu:
        with pytest.raises(ConversionError) as caught:
            predict(checkpoints["detect"], images, soc_version="Ascend310P3", cache_dir=str(tmp_path / "cache"))
        message = str(caught.value)
        command = (  # no atc to ask about --precision_mode_v2: the flag every CANN version takes
            "atc --framework=5 --model=model.onnx --output=model --input_format=NCHW "
            "--input_shape=images:1,3,640,640 --soc_version=Ascend310P3 --precision_mode=force_fp32"
        )
        assert command in message
        pending = Path(message.split("cd ", 1)[1].split(" && ", 1)[0])
        assert pending.parent == tmp_path / "cache" / "ascend_pending"
        assert (pending / "model.onnx").is_file() and (pending / "metadata.yaml").is_file()
        assert emu.atc_calls() == []
        # what the user does on a CANN machine, here with the stand-in atc, then passes the .om
        argv = command.split()[1:]
        done = subprocess.run(
            [sys.executable, "-m", "yolo_adapters.testing.atc", *argv], cwd=pending, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        _, results = predict(pending / "model.om", images, task="detect")
        assert_parity(square_references("detect"), results)


# -- the stand-in itself: exactly the contract, so the backend cannot lean on leniency -----------------------
def test_stand_in_enforces_the_session_contract(emu, checkpoints, tmp_path):
    om = converted_om(checkpoints)
    from ais_bench.infer.interface import InferSession

    with pytest.raises(TypeError):
        InferSession("0", str(om))
    with pytest.raises(ValueError):
        InferSession(256, str(om))
    spaced = tmp_path / "with space"
    spaced.mkdir()
    (spaced / "m.om").write_bytes(om.read_bytes())
    with pytest.raises(ValueError):
        InferSession(0, str(spaced / "m.om"))
    with pytest.raises(ValueError):
        InferSession(0, str(om.with_suffix(".onnx")))
    with pytest.raises(ValueError):
        InferSession(0, str(om.parent))
    session = InferSession(0, str(om))
    desc = session.get_inputs()[0]
    assert desc.shape == [1, 3, 640, 640] and desc.realsize == 3 * 640 * 640 * 4
    x = np.zeros((1, 3, 640, 640), np.float32)
    with pytest.raises(ValueError):
        session.infer((x,))
    with pytest.raises(RuntimeError):
        session.infer([x.astype(np.float16)])  # no dtype conversion: wrong byte size
    with pytest.raises(RuntimeError):
        session.infer([x], mode="dymbatch")
    assert session.infer([np.asfortranarray(x)])[0].dtype == np.float32  # made C-contiguous, as the real one does
    session.free_resource()
    with pytest.raises(RuntimeError):
        session.infer([x])
