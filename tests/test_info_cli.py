"""`yolo-adapters info` and `yolo-adapters cache list|clear`: output and exit codes, including a machine without a
backend's package, a broken third-party plugin, the Ascend tools (emulated) and the patch state."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from yolo_adapters.backends.base import BackendPlugin, ExportPlan
from yolo_adapters.core import registry
from yolo_adapters.core.cache import ArtifactCache
from yolo_adapters.tools import cli


def _info(capsys: pytest.CaptureFixture, *flags: str) -> str:
    assert cli.main(["info", *flags]) == 0
    return capsys.readouterr().out


def _backend(info: dict, name: str) -> dict:
    return next(b for b in info["backends"] if b["name"] == name)


def test_info_reports_engines_devices_and_versions(capsys: pytest.CaptureFixture) -> None:
    info = json.loads(_info(capsys, "--json"))
    assert info["packages"]["openvino"] and info["packages"]["onnxruntime"] and info["packages"]["ultralytics"]
    openvino, ort, ascend = _backend(info, "openvino"), _backend(info, "onnxruntime"), _backend(info, "ascend")
    assert openvino["available"] and "CPU" in openvino["devices"] and openvino["origin"] == "built-in"
    assert openvino["environment"]["device_names"]["CPU"]  # OpenVINO's FULL_DEVICE_NAME
    assert ort["available"] and "cpu" in ort["devices"]
    assert "CPUExecutionProvider" in ort["environment"]["providers"]
    assert not ascend["available"] and "ais_bench is not installed" in ascend["why_not"]
    assert ascend["environment"]["ais_bench"] is False and ascend["environment"]["atc"] is None
    assert set(info["cache"]) == {"root", "entries", "bytes"}
    text = _info(capsys)
    assert "openvino     [built-in] ready" in text and "devices: CPU" in text
    assert "providers: " in text and "CPUExecutionProvider" in text
    assert "ascend       [built-in] unavailable: ais_bench is not installed" in text and "atc: not found" in text


def test_info_without_a_backend_package_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    real = importlib.util.find_spec

    def hide(name: str, *args, **kwargs):
        return None if name.split(".")[0] == "openvino" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", hide)
    info = json.loads(_info(capsys, "--json"))
    openvino = _backend(info, "openvino")
    assert openvino == {
        "name": "openvino",
        "origin": "built-in",
        "available": False,
        "devices": [],
        "environment": {},
        "why_not": "OpenVINO is not installed: pip install 'yolo-adapters[openvino]' (or pip install openvino).",
    }
    assert _backend(info, "onnxruntime")["available"]


def test_info_without_a_backend_package_in_a_fresh_process(tmp_path: Path) -> None:
    # A sitecustomize that makes `onnxruntime` unimportable, as on a machine where it was never installed.
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['onnxruntime'] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    base = [sys.executable, "-m", "yolo_adapters", "info"]
    done = subprocess.run([*base, "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    ort = _backend(info, "onnxruntime")
    assert not ort["available"] and "pip install 'yolo-adapters[onnxruntime]'" in ort["why_not"]
    assert ort["devices"] == [] and ort["environment"] == {}
    assert _backend(info, "openvino")["available"]
    assert info["patches"]["installed"] is False and info["patches"]["startup_hook"] is True
    text = subprocess.run(base, capture_output=True, text=True, timeout=120, env=env)
    assert text.returncode == 0 and "onnxruntime  [built-in] unavailable: ONNX Runtime is not installed" in text.stdout


class _ThirdParty(BackendPlugin):
    name = "thirdparty"

    def missing_requirements(self):
        return None

    def available_devices(self):
        return ["X0", "X1"]

    def find_artifact(self, path):
        return None

    def export_plan(self, device, options, imgsz, batch):  # pragma: no cover - never converts here
        raise NotImplementedError

    def load(self, artifact, device, options):  # pragma: no cover
        raise NotImplementedError


_ThirdParty.__module__ = "their_plugin.backend"


class _BrokenBackend(_ThirdParty):
    name = "broken"

    def __init__(self) -> None:
        raise RuntimeError("plugin exploded")


def test_info_lists_third_party_and_broken_plugins(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(registry._extra, "broken", _BrokenBackend)
    monkeypatch.setitem(registry._extra, "thirdparty", _ThirdParty)
    monkeypatch.delitem(registry._instances, "thirdparty", raising=False)
    info = json.loads(_info(capsys, "--json"))
    broken, third = _backend(info, "broken"), _backend(info, "thirdparty")
    assert not broken["available"] and "plugin exploded" in broken["why_not"]
    assert third["available"] and third["origin"] == "their_plugin" and third["devices"] == ["X0", "X1"]
    registry._instances.pop("thirdparty", None)


def test_info_reports_ascend_tools_and_cards_when_present(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from yolo_adapters.testing import emulate_ascend

    with emulate_ascend(tmp_path, cards=2, chip="310P3"):
        info = json.loads(_info(capsys, "--json"))
        text = _info(capsys)
    ascend = _backend(info, "ascend")
    assert ascend["available"] and ascend["devices"] == ["0", "1"]
    env = ascend["environment"]
    assert env["npus"] == 2 and env["soc_version"] == "Ascend310P3" and env["ais_bench"] is True
    assert env["atc"] and Path(env["atc"]).name == "atc" and env["npu_smi"] and env["cann_env"]
    assert "ascend       [built-in] ready" in text and "devices: 0, 1" in text and "soc_version: Ascend310P3" in text


def test_info_says_whether_patches_are_active(capsys: pytest.CaptureFixture) -> None:
    import ultralytics.engine.predictor  # noqa: F401 - the patch points exist once Ultralytics is imported

    import yolo_adapters

    yolo_adapters.activate("openvino")
    info = json.loads(_info(capsys, "--json"))
    assert info["patches"]["installed"] and info["patches"]["active_backend"] == "openvino"
    assert info["patches"]["patched"]["ultralytics.engine.predictor.AutoBackend"] is True
    assert info["active_backend"] == "openvino" and info["patches_installed"] is True
    yolo_adapters.deactivate(uninstall=True)
    info = json.loads(_info(capsys, "--json"))
    assert not info["patches"]["installed"] and not any(info["patches"]["patched"].values())
    assert "patches in this process: not installed" in _info(capsys)


# -- cache list | clear -------------------------------------------------------------------------------------
def _fake_entry(cache: ArtifactCache, key: str, backend: str, plan: ExportPlan, size: int) -> None:
    def build(staging: Path) -> Path:
        (staging / "model.bin").write_bytes(b"\0" * size)
        return staging / "model.bin"

    fields = {"weights": "0123456789abcdef" * 4, "task": "pose", "backend": backend, "plan": plan, "engine": "x"}
    cache.get_or_build(key, build, fields)


def test_cache_list_and_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("YOLO_ADAPTERS_CACHE", str(tmp_path / "cache"))
    assert cli.main(["cache", "list"]) == 0
    assert capsys.readouterr().out.startswith("no converted models in ")

    cache = ArtifactCache()
    _fake_entry(cache, "pose-openvino-aaa", "openvino", ExportPlan("openvino", (640, 640), 1, True, "fp32"), 2_000_000)
    _fake_entry(cache, "pose-onnxruntime-bbb", "onnxruntime", ExportPlan("onnx", (384, 640), 4, False, "fp16"), 500_000)
    (cache.artifacts / ".staging-pose-openvino-ccc-x").mkdir()  # a build in progress is not an entry

    assert cli.main(["cache", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "task", "backend", "shape", "precision", "size", "created", "key"]
    ort = next(line for line in lines if "pose-onnxruntime-bbb" in line).split()
    assert ort[:7] == ["0123456789ab", "pose", "onnxruntime", "4x3x384x640", "fp16", "0.5", "MB"]
    ov = next(line for line in lines if "pose-openvino-aaa" in line)
    assert "1x3x640x640 dynamic" in ov and "fp32" in ov and "2.0 MB" in ov
    assert lines[-1].startswith("2 entries, 2.5 MB in ")

    assert cli.main(["cache", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["root"] == str(tmp_path / "cache")
    assert {e["key"]: (e["backend"], e["shape"], e["precision"]) for e in listed["entries"]} == {
        "pose-openvino-aaa": ("openvino", "1x3x640x640 dynamic", "fp32"),
        "pose-onnxruntime-bbb": ("onnxruntime", "4x3x384x640", "fp16"),
    }
    assert all(e["size"] > 0 and e["model"] == "0123456789ab" for e in listed["entries"])

    assert cli.main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.strip() == f"removed 2 entries from {tmp_path / 'cache'}"
    assert cli.main(["cache", "list"]) == 0
    assert capsys.readouterr().out.startswith("no converted models")
    assert cli.main(["cache", "clear"]) == 0
    assert "removed 0 entries" in capsys.readouterr().out


def test_cache_bad_action_exits_2(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["cache", "purge"])
    assert exc.value.code == 2 and "invalid choice: 'purge'" in capsys.readouterr().err


def test_cache_list_shows_a_real_conversion(pose_pt: Path, capsys: pytest.CaptureFixture) -> None:
    from yolo_adapters.integration.export import load_checkpoint, weights_digest

    assert cli.main(["convert", str(pose_pt), "--backend", "onnxruntime"]) == 0  # the session cache
    capsys.readouterr()
    assert cli.main(["cache", "list"]) == 0
    digest = weights_digest(load_checkpoint(pose_pt))[:12]
    row = next(line for line in capsys.readouterr().out.splitlines() if "yolo11n-pose-onnxruntime-" in line).split()
    assert row[:5] == [digest, "pose", "onnxruntime", "1x3x640x640", "dynamic"] and row[5] == "fp32"
