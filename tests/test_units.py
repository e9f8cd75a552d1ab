"""Pure functions the shared flows rely on: no model is built or converted here, each test takes milliseconds."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from yolo_adapters.backends.base import BackendPlugin, ExportPlan
from yolo_adapters.core import registry
from yolo_adapters.core.devices import split_spec
from yolo_adapters.core.logs import warn_once
from yolo_adapters.core.model_info import DEFAULT_TASK, ModelInfo, task_of
from yolo_adapters.errors import BackendUnavailableError, OptionError, UnknownBackendError

MISSING = "Fake engine is not installed: pip install fake-engine."


class _Missing(BackendPlugin):
    """A plugin whose engine is absent: every entry point must say the plugin's own sentence."""

    name = "fakemissing"
    device_aliases = ("fakealias",)
    default_device = "F0"
    option_types: ClassVar[dict[str, tuple[type, ...]]] = {"knob": (int,)}

    def missing_requirements(self) -> str | None:
        return MISSING

    def normalize_device(self, prefix: str, spec: str) -> str:
        return spec.upper() if spec else self.default_device

    def export_plan(
        self, device: str, options: Mapping[str, Any], imgsz: Sequence[int], batch: int
    ) -> ExportPlan:  # pragma: no cover - never converts
        raise NotImplementedError

    def load(self, artifact: Path, device: str, options: Mapping[str, Any]) -> Any:  # pragma: no cover
        raise NotImplementedError


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(registry._extra, _Missing.name, _Missing)
    monkeypatch.delitem(registry._instances, _Missing.name, raising=False)
    yield
    registry._instances.pop(_Missing.name, None)


# -- split_spec ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("openvino", ("openvino", "")),
        (" OpenVINO : GPU.1 ", ("openvino", "GPU.1")),
        ("onnxruntime:cuda:1", ("onnxruntime", "cuda:1")),
        ("ascend:0,1", ("ascend", "0,1")),
        ("intel:gpu", ("intel", "gpu")),
        ("openvino:", ("openvino", "")),
    ],
)
def test_split_spec(text: str, expected: tuple[str, str]) -> None:
    assert split_spec(text) == expected


def test_environment_variable_uses_the_same_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    from yolo_adapters.core.settings import BACKEND_ENV, requested_backend

    monkeypatch.setenv(BACKEND_ENV, " ONNXRuntime:cuda:1 ")
    assert requested_backend() == ("onnxruntime", "cuda:1")
    monkeypatch.setenv(BACKEND_ENV, "off")
    assert requested_backend() is None


# -- resolve_spec ------------------------------------------------------------------------------------------------
def test_resolve_spec_unknown_backend_lists_the_registered_ones() -> None:
    with pytest.raises(UnknownBackendError, match="Registered backends: .*openvino"):
        registry.resolve_spec("nosuchengine:0")


def test_resolve_spec_missing_engine_says_the_plugins_sentence(fake: None) -> None:
    with pytest.raises(BackendUnavailableError) as caught:
        registry.resolve_spec("fakemissing:f1")
    assert str(caught.value) == MISSING


def test_resolve_spec_device_precedence_and_aliases(fake: None) -> None:
    plugin, device, options = registry.resolve_spec("FakeMissing:f1", require_installed=False)
    assert (plugin.name, device, options) == ("fakemissing", "F1", {})
    # the text's device wins over options["device"], which wins over the plugin's default; each is normalised
    assert registry.resolve_spec("fakemissing:f1", options={"device": "f2"}, require_installed=False).device == "F1"
    resolved = registry.resolve_spec("fakemissing", options={"device": "f2", "knob": 3}, require_installed=False)
    assert resolved.device == "F2" and resolved.options == {"device": "F2", "knob": 3}
    assert registry.resolve_spec("fakemissing", options={}, require_installed=False).options == {"device": "F0"}
    assert registry.resolve_spec("fakealias:f3", require_installed=False)[:2] == (plugin, "F3")


def test_resolve_spec_validates_options(fake: None) -> None:
    with pytest.raises(OptionError, match="Unknown option 'knbo'"):
        registry.resolve_spec("fakemissing", options={"knbo": 1}, require_installed=False)
    with pytest.raises(OptionError, match="'knob' .* must be int"):
        registry.resolve_spec("fakemissing", options={"knob": "3"}, require_installed=False)


def test_every_entry_point_reports_a_missing_engine_the_same_way(
    fake: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """activate, convert (CLI), check (CLI and Python): BackendUnavailableError with the plugin's message."""
    import yolo_adapters
    from yolo_adapters.tools.check import check
    from yolo_adapters.tools.cli import main

    with pytest.raises(BackendUnavailableError, match="Fake engine is not installed"):
        yolo_adapters.activate("fakemissing")
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"never loaded: the backend is resolved first")
    image = tmp_path / "a.jpg"
    image.write_bytes(b"never read")
    with pytest.raises(BackendUnavailableError, match="Fake engine is not installed"):
        check(checkpoint, backends=["fakemissing"], source=image)
    for argv in (
        ["convert", str(checkpoint), "--backend", "fakemissing"],
        ["check", str(checkpoint), "--backend", "fakemissing:f1", "--source", str(image)],
    ):
        assert main(argv) == 2, argv
        assert capsys.readouterr().err.strip() == f"yolo-adapters: error: {MISSING}"


# -- warn_once -----------------------------------------------------------------------------------------------
def test_warn_once_says_each_key_once_per_logger(caplog: pytest.LogCaptureFixture) -> None:
    first, second = logging.getLogger("yolo_adapters.test_units.a"), logging.getLogger("yolo_adapters.test_units.b")
    with caplog.at_level(logging.WARNING):
        assert warn_once(first, "fallback", "fell back to %s", "CPU") is True
        assert warn_once(first, "fallback", "fell back to %s", "CPU") is False
        assert warn_once(first, "other", "another thing") is True
        assert warn_once(second, "fallback", "fell back to %s", "CPU") is True
    said = [(r.name, r.getMessage()) for r in caplog.records]
    assert said == [
        (first.name, "fell back to CPU"),
        (first.name, "another thing"),
        (second.name, "fell back to CPU"),
    ]


# -- the task default ---------------------------------------------------------------------------------------------
def test_task_of_defaults_to_detect() -> None:
    assert DEFAULT_TASK == "detect"
    assert task_of(ModelInfo(task="pose", names={0: "person"})) == "pose"
    assert task_of(ModelInfo(task="", names={0: "a"})) == "detect"
    assert task_of(type("Model", (), {"task": None})()) == "detect"
    assert task_of(object()) == "detect"


# -- image suffixes -------------------------------------------------------------------------------------------
def test_check_and_calibration_take_the_same_images_as_ultralytics(tmp_path: Path) -> None:
    """A file ``check`` compares is one calibration uses: both read Ultralytics' own list of image formats."""
    from ultralytics.data.utils import IMG_FORMATS

    from yolo_adapters.core.images import IMAGE_SUFFIXES, is_image
    from yolo_adapters.quantize import calibration
    from yolo_adapters.tools import check

    assert set(IMAGE_SUFFIXES) == {f".{f.lower()}" for f in IMG_FORMATS}
    assert ".JPG" in IMAGE_SUFFIXES and ".txt" not in IMAGE_SUFFIXES and is_image("x/Y.PNG")
    for suffix in IMAGE_SUFFIXES:
        (tmp_path / f"image{suffix.replace('.', '_')}{suffix}").write_bytes(b"")
    (tmp_path / "labels.txt").write_text("not an image")
    (tmp_path / "upper.JPG").write_bytes(b"")
    by_check = {p.name for p in check.resolve_images(tmp_path)}
    by_calibration = {p.name for p in calibration.find_images(tmp_path)}
    assert by_check == by_calibration and len(by_check) == len(IMAGE_SUFFIXES) + 1
    assert "labels.txt" not in by_check
