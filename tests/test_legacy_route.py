"""The route to OpenVINO that Ultralytics 8.1-8.3 take with OpenVINO 2026 (their own exporter imports
``openvino.runtime``, gone): Ultralytics' ONNX export, converted by ``openvino.convert_model``. It must need nothing
beyond what ``pip install "yolo-adapters[openvino]"`` installs, and say which package is missing when it is."""

from __future__ import annotations

import importlib.util

import pytest
import tomllib

from yolo_adapters.backends.base import ExportPlan
from yolo_adapters.backends.openvino.plugin import OpenVINOPlugin
from yolo_adapters.errors import ConversionError

PLAN = ExportPlan(format="openvino", imgsz=(640, 640), batch=1, dynamic=True, precision="fp16", extra=(("x", 1),))


def test_the_onnx_route_is_unsimplified_fp32_onnx():
    """Ultralytics 8.3 simplifies by default, which pip-installs a pinned onnxslim and onnxruntime mid-export."""
    plan = OpenVINOPlugin().fallback_plan(PLAN)
    assert plan is not None and plan.format == "onnx" and plan.precision == "fp32"
    assert dict(plan.extra) == {"x": 1, "simplify": False}


def test_a_missing_onnx_package_is_named_with_its_pip_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    with pytest.raises(ConversionError, match=r"onnx package is missing: pip install onnx .*yolo-adapters\[openvino\]"):
        OpenVINOPlugin().fallback_plan(PLAN)


def test_the_openvino_extra_installs_what_the_route_needs(repo_root):
    extras = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("onnx>=") for req in extras["openvino"]), extras["openvino"]
