"""The four ways to switch an engine on, and the patch layer's promises (reversible, idempotent, fail-open)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import yolo_adapters
from tests.support.needs import require
from yolo_adapters.compare.parity import compare_results
from yolo_adapters.core import logs
from yolo_adapters.integration import patching
from yolo_adapters.integration.module import EngineModule
from yolo_adapters.integration.patching import installer

require("openvino")
from ultralytics import YOLO  # noqa: E402

PREDICT = """
import json, sys
{before}
from ultralytics import YOLO
{after}
model = YOLO(r"{pt}")
result = model.predict(r"{image}", verbose=False{device})[0]
print("RESULT " + json.dumps({{"engine": type(model.predictor.model).__name__, "people": len(result.boxes),
                              "argv": sys.argv[1:]}}))
"""


def _script(tmp_path: Path, pt: Path, image: Path, before: str = "", after: str = "", device: str = "") -> Path:
    path = tmp_path / "their_script.py"
    path.write_text(
        PREDICT.format(before=before, after=after, pt=pt, image=image, device=f", device={device!r}" if device else "")
    )
    return path


def _run(cmd: list[str], env_extra: dict | None = None, cwd: Path | None = None) -> dict:
    env = {**os.environ, **(env_extra or {})}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, (
        f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr[-3000:]}"
    )
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.compat_activation
@pytest.mark.parametrize(
    "before, after",
    [("import yolo_adapters.openvino", ""), ("", "import yolo_adapters.openvino")],
    ids=["import-before-ultralytics", "import-after-ultralytics"],
)
def test_import_activates_in_either_order(
    tmp_path: Path, pose_pt: Path, images: list, people_on_bus: int, before: str, after: str
) -> None:
    out = _run([sys.executable, str(_script(tmp_path, pose_pt, images[0], before, after))])
    assert out == {"engine": "EngineModule", "people": people_on_bus, "argv": []}


@pytest.mark.compat_activation
def test_device_string_needs_no_import(tmp_path: Path, pose_pt: Path, images: list, people_on_bus: int) -> None:
    out = _run([sys.executable, str(_script(tmp_path, pose_pt, images[0], device="openvino:CPU"))])
    assert out["engine"] == "EngineModule" and out["people"] == people_on_bus


@pytest.mark.compat_activation
def test_env_var_activates_unchanged_script(tmp_path: Path, pose_pt: Path, images: list, people_on_bus: int) -> None:
    script = _script(tmp_path, pose_pt, images[0])
    assert _run([sys.executable, str(script)], {"YOLO_ADAPTERS": "openvino"})["engine"] == "EngineModule"
    stock = _run([sys.executable, str(script)], {"YOLO_ADAPTERS": ""})
    assert stock["engine"] == "AutoBackend" and stock["people"] == people_on_bus


@pytest.mark.compat_patching
def test_disable_env_turns_everything_off(tmp_path: Path, pose_pt: Path, images: list) -> None:
    script = _script(tmp_path, pose_pt, images[0], before="import yolo_adapters.openvino")
    out = _run([sys.executable, str(script)], {"YOLO_ADAPTERS_DISABLE": "1", "YOLO_ADAPTERS": "openvino"})
    assert out["engine"] == "AutoBackend"


def test_cli_run_script_and_module(tmp_path: Path, pose_pt: Path, images: list) -> None:
    script = _script(tmp_path, pose_pt, images[0])
    cli = [sys.executable, "-m", "yolo_adapters", "run", "--backend", "openvino"]
    out = _run([*cli, str(script), "--their-flag", "7"])
    assert out == {"engine": "EngineModule", "people": 4, "argv": ["--their-flag", "7"]}
    out = _run([*cli, "-m", "their_script", "x"], cwd=tmp_path)
    assert out["engine"] == "EngineModule" and out["argv"] == ["x"]


def test_cli_run_covers_ultralytics_yolo_cli(tmp_path: Path, pose_pt: Path, images: list) -> None:
    """`yolo-adapters run -b openvino yolo predict ...`: the conversion lands in the cache, so the engine ran."""
    cache = tmp_path / "cache"
    env = {**os.environ, "YOLO_ADAPTERS_CACHE": str(cache)}
    cmd = [
        sys.executable,
        "-m",
        "yolo_adapters",
        "run",
        "-b",
        "openvino",
        "yolo",
        "predict",
        f"model={pose_pt}",
        f"source={images[0]}",
        "save=False",
        f"project={tmp_path}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 persons" in done.stdout + done.stderr
    entries = [p for p in (cache / "artifacts").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and "openvino" in entries[0].name


def test_startup_hook_is_inert_and_import_is_light() -> None:
    probe = (
        "import sys; import yolo_adapters; names = yolo_adapters.available_backends();"
        "print(sorted(m for m in ('torch', 'openvino', 'onnxruntime', 'ultralytics') if m in sys.modules), "
        "'openvino' in names)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[] True", done.stderr
    bare = "import sys; print('wrapt' in sys.modules, 'yolo_adapters.integration.activation' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", bare], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False False", done.stderr


# -- in-process: the Python API and the patch layer ---------------------------------------------------
def _originals():
    import ultralytics.engine.predictor as predictor_module
    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.utils.torch_utils import select_device

    return predictor_module, AutoBackend, select_device


@pytest.mark.compat_activation
def test_deactivate_keeps_device_strings_working(
    pose_pt: Path, images: list, people_on_bus: int, tiny_pose_dataset: Path
) -> None:
    """deactivate() leaves what a new process has: nothing active (device=None is stock PyTorch), while a plugin
    device string still runs on its engine, for predict and for val (the route used to vanish: issue 17)."""
    _, AutoBackend, _ = _originals()
    yolo_adapters.activate("openvino")
    yolo_adapters.deactivate()
    assert yolo_adapters.active() is None
    model = YOLO(str(pose_pt))
    model.predict(str(images[0]), verbose=False)
    assert type(model.predictor.model) is AutoBackend  # nothing routed without a device string
    model = YOLO(str(pose_pt))  # Ultralytics < 8.4 keeps a model's first predictor, whatever device comes later
    result = model.predict(str(images[0]), device="openvino", verbose=False)[0]
    assert isinstance(model.predictor.model, EngineModule) and model.predictor.model.format == "openvino"
    assert len(result.boxes) == people_on_bus
    metrics = model.val(data=str(tiny_pose_dataset), device="openvino", batch=1, plots=False, verbose=False)
    reference = YOLO(str(pose_pt)).val(data=str(tiny_pose_dataset), device="cpu", batch=1, plots=False, verbose=False)
    assert abs(metrics.pose.map50 - reference.pose.map50) < 0.05  # the engine validated as PyTorch does


@pytest.mark.compat_activation
def test_deactivate_uninstall_restores_stock_ultralytics(pose_pt: Path, images: list) -> None:
    predictor_module, AutoBackend, select_device = _originals()
    yolo_adapters.activate("openvino")
    assert yolo_adapters.active() == "openvino"
    assert patching.is_patched("ultralytics.engine.predictor", "AutoBackend")
    yolo_adapters.deactivate(uninstall=True)
    assert yolo_adapters.active() is None
    assert predictor_module.AutoBackend is AutoBackend and predictor_module.select_device is select_device
    for method in ("BasePredictor.setup_model", "BasePredictor.stream_inference", "BasePredictor.preprocess"):
        assert not patching.is_patched("ultralytics.engine.predictor", method), method
    import ultralytics.engine.validator as validator_module

    assert validator_module.AutoBackend is AutoBackend
    model = YOLO(str(pose_pt))
    model.predict(str(images[0]), verbose=False)
    assert type(model.predictor.model) is AutoBackend


@pytest.mark.compat_patching
def test_use_context_restores_previous_state(pose_pt: Path, images: list) -> None:
    yolo_adapters.deactivate(uninstall=True)
    with yolo_adapters.use("openvino", hint="throughput"):
        assert yolo_adapters.active() == "openvino"
        model = YOLO(str(pose_pt))
        model.predict(str(images[0]), verbose=False)
        assert model.predictor.model.format == "openvino"
    assert yolo_adapters.active() is None
    assert not patching.is_patched("ultralytics.engine.predictor", "AutoBackend")
    assert "openvino" in yolo_adapters.available_backends()


@pytest.mark.compat_patching
def test_install_is_idempotent() -> None:
    predictor_module, AutoBackend, _ = _originals()
    for _ in range(3):
        patching.install()
        yolo_adapters.activate("openvino")
    assert predictor_module.AutoBackend.__wrapped__ is AutoBackend


@pytest.mark.compat_activation
def test_survives_predictor_recreation(pose_pt: Path, images: list, people_on_bus: int) -> None:
    """The notebook recipe dies when Ultralytics rebuilds its predictor; class-level patches do not."""
    yolo_adapters.activate("openvino")
    model = YOLO(str(pose_pt))
    assert model.predictor is None  # nothing to patch on the instance, and nothing needs to be
    model.predict(str(images[0]), verbose=False)
    first = model.predictor
    model.predict(str(images[0]), device="openvino:CPU", verbose=False)  # a device change rebuilds it
    model.predictor = None
    result = model.predict(str(images[0]), verbose=False)[0]
    assert model.predictor is not first and model.predictor.model.format == "openvino"
    assert len(result.boxes) == people_on_bus


def test_stream_and_track_run_on_the_engine(pose_pt: Path, images: list) -> None:
    yolo_adapters.activate("openvino")
    model = YOLO(str(pose_pt))
    streamed = list(model.predict([str(im) for im in images], stream=True, verbose=False))
    assert [len(r.boxes) for r in streamed] == [4, 2]
    tracked = model.track(str(images[0]), verbose=False, persist=False)[0]
    assert model.predictor.model.format == "openvino" and tracked.boxes.id is not None


@pytest.mark.compat_activation
def test_two_threads_predicting_at_once(pose_pt: Path, images: list) -> None:
    reference = [YOLO(str(pose_pt)).predict(str(im), device="cpu", verbose=False)[0] for im in images]
    yolo_adapters.activate("openvino")
    errors: list[BaseException] = []
    results: dict[int, list] = {}

    def work(index: int) -> None:
        try:
            model = YOLO(str(pose_pt))
            results[index] = [model.predict(str(images[k % 2]), verbose=False)[0] for k in range(4)]
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    for index in range(2):
        for k, result in enumerate(results[index]):
            assert compare_results(reference[k % 2], result).passed()


@pytest.mark.compat_patching
def test_fails_open_when_a_patch_point_moved(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, pose_pt: Path, images: list
) -> None:
    predictor_module, AutoBackend, _ = _originals()
    yolo_adapters.deactivate(uninstall=True)
    original = predictor_module.BasePredictor.setup_model

    def setup_model_from_the_future(self, model, verbose=True):  # no longer calls AutoBackend/select_device
        return original(self, model, verbose)

    monkeypatch.setattr(predictor_module.BasePredictor, "setup_model", setup_model_from_the_future)
    monkeypatch.setattr(logs, "_said", set())
    with caplog.at_level(logging.WARNING, logger="yolo_adapters"):
        patching.install()
        patching.install()
    warnings = [r.message for r in caplog.records if "ultralytics.engine.predictor" in r.message]
    assert len(warnings) == 1 and "stock Ultralytics runs" in warnings[0]
    assert predictor_module.AutoBackend is AutoBackend
    model = YOLO(str(pose_pt))
    assert len(model.predict(str(images[0]), device="cpu", verbose=False)[0].boxes) == 4


@pytest.mark.compat_patching
def test_version_guard(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import ultralytics

    yolo_adapters.deactivate(uninstall=True)
    monkeypatch.setattr(logs, "_said", set())
    monkeypatch.setattr(ultralytics, "__version__", "8.0.200")
    with caplog.at_level(logging.WARNING, logger="yolo_adapters"):
        patching.install()
    assert not patching.is_patched("ultralytics.engine.predictor", "AutoBackend")
    assert any("not supported" in r.message for r in caplog.records)

    yolo_adapters.deactivate(uninstall=True)
    monkeypatch.setattr(ultralytics, "__version__", "8.9.0")  # newer than tested, same shape: patched
    patching.install()
    assert patching.is_patched("ultralytics.engine.predictor", "AutoBackend")


@pytest.mark.compat_patching
def test_hook_errors_never_escape(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import ultralytics.engine.predictor as predictor_module

    yolo_adapters.deactivate(uninstall=True)
    monkeypatch.setattr(logs, "_said", set())

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(installer, "_apply", explode)
    with caplog.at_level(logging.WARNING, logger="yolo_adapters"):
        patching.install()  # would run inside `import ultralytics` in a fresh process
    assert any("boom" in r.message for r in caplog.records)
    assert not patching.is_patched(predictor_module.__name__, "AutoBackend")


def test_cli_info_json() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "yolo_adapters", "info", "--json"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    openvino = next(b for b in info["backends"] if b["name"] == "openvino")
    assert openvino["available"] and "CPU" in openvino["devices"]


def test_cli_convert_prints_cached_artifact(pose_pt: Path) -> None:
    cmd = [sys.executable, "-m", "yolo_adapters", "convert", str(pose_pt), "--backend", "openvino", "--imgsz", "640"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    artifact = Path(done.stdout.strip().splitlines()[-1])
    assert artifact.suffix == ".xml" and artifact.is_file() and (artifact.parent / "metadata.yaml").is_file()
    bad = subprocess.run([*cmd[:-2], "--backend", "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Unknown yolo_adapters backend 'nope'" in bad.stderr
