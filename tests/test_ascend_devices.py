"""Ascend devices and sessions: NPU ids, several cards, the `npu` spelling, SoC detection, one session per .om and
NPU, teardown, the older ais_bench API, and the torch_npu route left to Ultralytics.

The Ascend backend against the emulated ais_bench / atc / npu-smi (yolo_adapters.testing): no card here, so every test
that runs a model asserts that the emulated InferSession really ran it (its recorded calls).
"""

from __future__ import annotations

import gc
import importlib.util
import sys
import threading

import numpy as np
import pytest

from tests.support.ascend import assert_parity, load_engine, predict
from yolo_adapters.backends.ascend import AscendPlugin, detect_soc, npu_count
from yolo_adapters.errors import DeviceError
from yolo_adapters.testing import emulate_ascend


# -- devices ------------------------------------------------------------------------------------------------
def test_device_id_passed_as_int(emu, checkpoints, images):
    predict(checkpoints["detect"], images[:1], device="ascend:1")
    assert emu.device_ids() == [1] and all(type(d) is int for d in emu.device_ids())
    assert emu.infer_devices() == [1]


def test_two_cards_both_used(emu, checkpoints, images, square_references):
    _, results = predict(checkpoints["detect"], images + images, device="ascend:0,1")
    assert sorted(emu.device_ids()) == [0, 1]
    used = emu.infer_devices()
    assert len(used) == 4 and set(used) == {0, 1}
    assert_parity(square_references("detect") * 2, results)


def test_npu_without_torch_npu_routes_here_without_importing_it(emu, checkpoints, images):
    if importlib.util.find_spec("torch_npu") is not None:
        assert not AscendPlugin().claims_device("npu")  # torch_npu installed: "npu" stays PyTorch's
        return
    assert AscendPlugin().claims_device("npu")
    model, _ = predict(checkpoints["detect"], images[:1], device="npu:1")
    assert model.predictor.model.format == "ascend" and emu.infer_devices() == [1]
    assert "torch_npu" not in sys.modules


def test_device_index_out_of_range(emu, checkpoints, images):
    assert npu_count() == 2
    with pytest.raises(DeviceError, match="npu-smi reports 2"):
        predict(checkpoints["detect"], images[:1], device="ascend:5")
    with pytest.raises(DeviceError, match="0..255"):
        predict(checkpoints["detect"], images[:1], device="ascend:300")
    with pytest.raises(DeviceError, match="list of NPU ids"):
        predict(checkpoints["detect"], images[:1], device="ascend:gpu")
    assert emu.device_ids() == []


def test_device_out_of_range_without_npu_smi(tmp_path, checkpoints, images):
    with emulate_ascend(tmp_path, cards=1, npu_smi=False) as emu:
        with pytest.raises(DeviceError, match="could not load"):
            predict(checkpoints["detect"], images[:1], device="ascend:1", soc_version="Ascend310P3")
        assert emu.npu_smi_calls() == []


def test_soc_from_npu_smi_option_and_env(emu, monkeypatch):
    assert detect_soc() == "Ascend310P3"
    backend = AscendPlugin()
    assert dict(backend.export_plan("0", {}, (640, 640), 1).extra)["atc_soc_version"] == "Ascend310P3"
    assert (
        dict(backend.export_plan("0", {"soc_version": "Ascend910B3"}, (640, 640), 1).extra)["atc_soc_version"]
        == "Ascend910B3"
    )
    monkeypatch.setenv("YOLO_ADAPTERS_SOC", "Ascend310B4")
    assert dict(backend.export_plan("0", {}, (640, 640), 1).extra)["atc_soc_version"] == "Ascend310B4"


# -- sessions: locking and teardown ------------------------------------------------------------------------
def test_one_session_never_runs_two_calls_at_once(tmp_path, checkpoints):
    with emulate_ascend(tmp_path, cards=1, infer_delay=0.02) as emu:
        a, b = load_engine(checkpoints), load_engine(checkpoints)  # same .om, same NPU: one shared session
        assert len(emu.of("init")) == 1
        x = np.zeros(a.input_shape, np.float32)
        threads = [threading.Thread(target=lambda e=e: [e.infer(x) for _ in range(3)]) for e in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(emu.of("infer")) == 12 and emu.overlaps == 0
        # the detector itself works: unserialised calls on the raw session are caught
        raw = a._handles[0].session
        threads = [threading.Thread(target=raw.infer, args=([x],)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert emu.overlaps > 0
        a.close()
        b.close()


def test_teardown_frees_sessions(tmp_path, checkpoints):
    with emulate_ascend(tmp_path, cards=2) as emu:
        first = load_engine(checkpoints, device="0,1")
        second = load_engine(checkpoints, device="0")
        first.close()
        assert emu.freed_sessions() == [e["uid"] for e in emu.of("init") if e["device_id"] == 1]  # NPU 0 still in use
        first.close()  # idempotent
        assert len(emu.of("free")) == 1
        del second
        gc.collect()  # the finalizer releases what an engine dropped without close()
        assert sorted(e["device_id"] for e in emu.of("free")) == [0, 1]


def test_older_ais_bench_api(tmp_path, checkpoints):
    with emulate_ascend(tmp_path, cards=1, api="older") as emu:
        engine = load_engine(checkpoints)
        session = engine._handles[0].session
        assert not hasattr(session, "free_resource") and not hasattr(session, "summary")
        engine.infer(np.zeros(engine.input_shape, np.float32))
        assert len(engine.summary()[0].exec_time_list) == 1  # through sumary()
        engine.close()  # no free_resource to call: must not fail
        assert emu.of("free") == []
    with emulate_ascend(tmp_path, cards=1, api="current") as emu:
        engine = load_engine(checkpoints)
        engine.infer(np.zeros(engine.input_shape, np.float32))
        assert len(engine.summary()[0].exec_time_list) == 1
        engine.close()
        assert len(emu.of("free")) == 1


def test_torch_npu_route_hands_cpu_tensors_to_post_processing():
    """With torch_npu installed, `npu` stays Ultralytics' own route; its outputs reach NMS as host tensors."""
    import torch

    from yolo_adapters.integration.module import NPUOutputsOnHost
    from yolo_adapters.integration.patching.wrappers import autobackend_wrapper

    moved = []

    class OnDevice(torch.Tensor):  # stands in for an NPU tensor: records the move to the host
        def cpu(self, *args, **kwargs):
            moved.append(tuple(self.shape))
            return torch.Tensor(self.as_subclass(torch.Tensor))

    class StockOnNPU(torch.nn.Module):  # what Ultralytics' AutoBackend is on torch_npu: device type "npu"
        def __init__(self, model=None, device=None):
            super().__init__()
            self.device = type("NPUDevice", (), {"type": "npu"})()
            self.stride = 32

        def forward(self, im):
            return [torch.zeros(1, 56, 10).as_subclass(OnDevice), torch.zeros(1, 32, 4, 4).as_subclass(OnDevice)]

    built = autobackend_wrapper(StockOnNPU, None, (), {"model": "x.pt", "device": "npu:0"})
    assert isinstance(built, NPUOutputsOnHost) and built.stride == 32 and built.device.type == "npu"
    out = built(torch.zeros(1, 3, 32, 32))
    assert moved == [(1, 56, 10), (1, 32, 4, 4)]
    assert all(type(t) is torch.Tensor for t in out)

    plain = autobackend_wrapper(lambda model=None, device=None: torch.nn.Identity(), None, (), {"device": "cpu"})
    assert isinstance(plain, torch.nn.Identity)  # every other stock route is untouched
