"""The plugin contract is enough: an engine yolo_adapters has never heard of, written from its hooks alone.

``tests/plugin_fixture`` holds a plugin package (``toyort``: ONNX Runtime on the CPU under another name) with the
``.dist-info`` folder an installed package would have, so the registry finds it through the entry-point group, in
this process, in subprocesses and in Ray workers (``PYTHONPATH``). On it: predict matches PyTorch and really runs
the engine, ``check`` and ``bench`` run, Ray runs it on actors, precision="int8" and precision="auto" convert, choose
and run (``PrecisionFlows`` and the plugin's hooks); its broken twin (outputs scaled) fails parity.
Last, a scan of the package: nothing outside the engine packages branches on an engine's name.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.needs import require
from yolo_adapters.compare.parity import DEFAULT_TOLERANCES, compare_results, match_detections

require("onnxruntime")
require("onnx")

FIXTURE = Path(__file__).resolve().parent / "plugin_fixture"
NAMES = ("toyort", "toyort_broken")
IMGSZ = 320
ENGINE_NAMES = {"openvino", "onnxruntime", "ascend"}
PACKAGE = Path(__file__).resolve().parents[1] / "yolo_adapters"


def _reset_registry() -> None:
    """Forget the discovered entry points and the toy plugins' instances: the next lookup scans sys.path again."""
    from yolo_adapters.core import registry

    with registry._lock:
        registry._entry_points = None
        for name in NAMES:
            registry._instances.pop(name, None)


@pytest.fixture(scope="module")
def toy() -> Iterator[object]:
    """The fixture package on sys.path and PYTHONPATH (subprocesses, Ray workers), found as an installed plugin."""
    previous = os.environ.get("PYTHONPATH")
    sys.path.insert(0, str(FIXTURE))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(FIXTURE), *([previous] if previous else [])])
    _reset_registry()
    from yolo_adapters.core import registry

    try:
        yield registry.get_backend("toyort")
    finally:
        sys.path.remove(str(FIXTURE))
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous
        sys.modules.pop("yolo_adapters_testplugin", None)
        _reset_registry()


@pytest.fixture(scope="module")
def detect_pt(checkpoints: dict[str, Path]) -> Path:
    """The run's detect checkpoint (tests/conftest.py), built once per run."""
    return checkpoints["detect"]


@pytest.fixture(scope="module")
def stock(detect_pt: Path, images: list[Path]) -> dict[str, object]:
    """image path -> stock PyTorch Results at the test size."""
    from ultralytics import YOLO

    model = YOLO(str(detect_pt))
    return {str(p): model.predict(str(p), imgsz=IMGSZ, device="cpu", verbose=False)[0] for p in images}


def _agreements(stock: dict[str, object], results: dict[str, object]) -> list:
    found = []
    for path, reference in stock.items():
        agreement = compare_results(reference, results[path], tol=DEFAULT_TOLERANCES)
        assert agreement.reference > 0, "stock PyTorch found nothing: the comparison would prove nothing"
        found.append(agreement)
    return found


def _predict(pt: Path, images: list[Path], device: str) -> tuple[object, dict[str, object]]:
    from ultralytics import YOLO

    model = YOLO(str(pt))
    return model, {str(p): model.predict(str(p), imgsz=IMGSZ, device=device, verbose=False)[0] for p in images}


# -- predict -----------------------------------------------------------------------------------------------
def test_the_plugin_is_found_through_its_entry_point(toy) -> None:
    from yolo_adapters.core import registry

    assert {"toyort", "toyort_broken"} <= set(registry.backend_names())
    assert type(toy).__module__ == "yolo_adapters_testplugin" and "toyort" in registry.available_backends()


def test_predict_matches_pytorch_on_the_engine_not_pytorch(toy, detect_pt, images, stock, monkeypatch) -> None:
    from ultralytics.nn.tasks import BaseModel

    from yolo_adapters.integration.module import EngineModule

    model, results = _predict(detect_pt, images, "toyort")
    module = model.predictor.model
    assert isinstance(module, EngineModule) and module.backend_name == "toyort"
    assert type(module.engine).__name__ == "ToyEngine" and module.engine.calls >= len(images)
    for agreement in _agreements(stock, results):
        assert agreement.passed(DEFAULT_TOLERANCES), agreement.failures(DEFAULT_TOLERANCES)

    def refuse(*args, **kwargs):
        raise AssertionError("the PyTorch model ran")

    monkeypatch.setattr(BaseModel, "forward", refuse)  # converted already: only the engine may answer now
    calls = module.engine.calls
    again = model.predict(str(images[0]), imgsz=IMGSZ, device="toyort", verbose=False)[0]
    assert module.engine.calls == calls + 1 and len(again.boxes) == len(results[str(images[0])].boxes)


def test_scaled_outputs_fail_the_comparison(toy, detect_pt, images, stock) -> None:
    """The same engine with every output times 1.25: parity must see it, else the test above proves nothing."""
    model, results = _predict(detect_pt, images, "toyort_broken")
    assert model.predictor.model.engine.scale == 1.25
    verdicts = [a.passed(DEFAULT_TOLERANCES) for a in _agreements(stock, results)]
    assert not any(verdicts), "scaled outputs passed the comparison with PyTorch"


# -- check -------------------------------------------------------------------------------------------------
def test_check_runs_on_the_plugin_and_fails_the_broken_one(toy, detect_pt, images) -> None:
    import yolo_adapters

    report = yolo_adapters.check(
        detect_pt, backends=["toyort", "toyort_broken"], source=[str(p) for p in images], imgsz=IMGSZ, progress=False
    )
    by_name = {engine.backend: engine for engine in report.engines}
    assert by_name["toyort"].error is None and by_name["toyort"].passed, by_name["toyort"].failures
    assert by_name["toyort"].engine_calls >= len(images)
    assert not by_name["toyort_broken"].passed and not report.passed


# -- Ray ---------------------------------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_ray_predict_runs_the_plugin_on_actors(toy, detect_pt, images, stock) -> None:
    ray = require("ray", extra="ray,test")
    import yolo_adapters.ray as yar

    if ray.is_initialized():
        ray.shutdown()
    # the workers find the plugin as the driver does: the fixture package on their PYTHONPATH
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}},
    )
    try:
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False
        ds = yar.predict([str(p) for p in images], str(detect_pt), device="toyort", imgsz=IMGSZ, concurrency=1)
        ds = ds.materialize()
        rows = ds.take_all()
        names = yar.read_metadata(ds)["names"]
    finally:
        ray.shutdown()
    assert len(rows) == len(images)
    results = {}
    for row in rows:
        assert row["error"] is None, row["error"]
        assert row["engine"] == "toyort:cpu"
        results[row["path"]] = yar.to_results(row, names)
    for agreement in _agreements(stock, results):
        assert agreement.passed(DEFAULT_TOLERANCES), agreement.failures(DEFAULT_TOLERANCES)


# -- bench -------------------------------------------------------------------------------------------------
def test_bench_times_the_plugin_and_its_limit(toy, detect_pt, tmp_path) -> None:
    """A few frames: every row ran them, the engine's limit comes from its timing session, and the cold start
    (a new process, which finds the plugin on PYTHONPATH) produced a result."""
    from yolo_adapters.tools import bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        ["--backend", "toyort", "--model", str(detect_pt), "--frames", "4", "--repeats", "1", "--imgsz", str(IMGSZ)]
        + ["--single-runs", "2", "--cold-runs", "1", "--workdir", str(tmp_path), "--quiet"]
    )
    report = bench.run(args)
    ours, limit = "yolo_adapters toyort", "inference-only limit, yolo_adapters toyort (its timing session)"
    assert report["backends"] == ["toyort"] and report["native"] is None  # Ultralytics has no toyort path
    assert {bench.PYTORCH, ours, limit} == set(report["results"])
    for label in (ours, limit):
        assert [run["frames"] for run in report["results"][label]] == [4] and report["results"][label][0]["fps"] > 0
    assert report["limits"][ours] == report["limits"][bench.PYTORCH] == limit
    assert report["extras"]["overhead"]["bare_ms"] > 0 and report["extras"]["cold_adapter_s"] > 0
    assert "toyort" in report["machine"]
    assert f"| {ours} |" in bench.render(report, "yolo-adapters bench --backend toyort")


# -- precision="int8" and precision="auto" ------------------------------------------------------------------
CALIBRATED = {"imgsz": IMGSZ, "calibration_size": 2, "holdout": 2}


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory: pytest.TempPathFactory, images: list[Path]) -> Path:
    """Four images: the mirrored photos calibrate, the photos themselves are held back (``split_holdout`` keeps
    every second of the sorted four), so auto judges on the images the PyTorch comparison below uses."""
    import cv2

    folder = tmp_path_factory.mktemp("toy_calibration")
    for letter, image in zip("ac", images):
        pixels = cv2.imread(str(image))
        cv2.imwrite(str(folder / f"{letter}_{image.stem}_flip.jpg"), pixels[:, ::-1])
        cv2.imwrite(str(folder / f"{chr(ord(letter) + 1)}_{image.stem}.jpg"), pixels)
    return folder


def _quantize_linear_nodes(path: Path) -> int:
    import onnx

    return sum(n.op_type == "QuantizeLinear" for n in onnx.load(str(path)).graph.node)


def _misses_pytorch(stock: dict[str, object], results: dict[str, object], chosen: str, tolerance: dict) -> list:
    """Why the engine's results are not PyTorch's: parity's failures where it runs FP32, the auto tolerances'
    shortfalls on the agreement figures where it runs a lower precision; empty when they agree."""
    from yolo_adapters.quantize.choice import shortfalls
    from yolo_adapters.quantize.report import summarize_agreement

    if chosen == "fp32":
        return [failure for a in _agreements(stock, results) for failure in a.failures(DEFAULT_TOLERANCES)]
    paths = list(stock)
    figures = summarize_agreement(
        [stock[p] for p in paths],
        [results[p] for p in paths],
        [Path(p).name for p in paths],
        0.25,
        match_detections,
        compare_results,
    )
    assert figures["confident_reference"] > 0, "PyTorch is confident of nothing: the recall would prove nothing"
    return shortfalls(figures, tolerance)


def _auto(backend: str, pt: Path, images: list[Path], calibration: Path, cache: Path) -> tuple[object, dict]:
    from ultralytics import YOLO

    import yolo_adapters

    yolo_adapters.activate(backend, precision="auto", calibration=str(calibration), cache_dir=str(cache), **CALIBRATED)
    model = YOLO(str(pt))
    return model, {str(p): model.predict(str(p), imgsz=IMGSZ, verbose=False)[0] for p in images}


def test_precision_flows_are_hard_to_misuse(toy) -> None:
    """Listed after ``BackendPlugin`` the mixin would silently lose to its refusals: the class is refused. An
    ``export_plan`` not ending in ``precision_plan`` is named, not reported as missing calibration images."""
    from yolo_adapters.backends.base import BackendPlugin
    from yolo_adapters.quantize import PrecisionFlows

    with pytest.raises(TypeError, match=r"list PrecisionFlows before BackendPlugin"):
        type("Backwards", (BackendPlugin, PrecisionFlows), {})
    plan = toy.make_plan("onnx", {"precision": "int8"}, (IMGSZ, IMGSZ), 1, cpu=True)
    with pytest.raises(NotImplementedError, match="export_plan must end with .*precision_plan"):
        toy.finish_precision(Path("model.onnx"), plan)


@pytest.mark.timeout(600)
def test_int8_converts_with_the_plugins_quantizer(toy, detect_pt, calibration_dir, tmp_path) -> None:
    """precision="int8" through the plugin's ``quantize``: a QDQ file in the cache with its report, FP32 gone."""
    from yolo_adapters.quantize import quantize_model

    result = quantize_model(detect_pt, calibration_dir, backend="toyort", cache_dir=str(tmp_path), **CALIBRATED)
    assert result.report is not None and result.report["backend"] == "toyort"
    assert result.report["agreement"]["images"] == 2 and result.report["agreement"]["confident_reference"] > 0
    assert _quantize_linear_nodes(result.artifact) > 0
    assert [p.name for p in result.artifact.parent.glob("*.onnx")] == [result.artifact.name]


@pytest.mark.timeout(600)
@pytest.mark.usefixtures("quick_auto_timing")
def test_auto_converts_chooses_and_runs_on_the_plugin(toy, detect_pt, images, stock, calibration_dir, tmp_path):
    """precision="auto" on a plugin written from the hooks: FP32 and INT8 built, judged on the held-back images and
    timed, the choice recorded; the engine runs the kept file, whose results agree with PyTorch (parity for FP32,
    the auto tolerances for INT8). The broken twin's kept model, judged the same way, does not."""
    from yolo_adapters.quantize import choice

    model, results = _auto("toyort", detect_pt, images, calibration_dir, tmp_path / "toyort")
    module = model.predictor.model
    recorded = choice.read_choice(module.artifact)
    assert recorded is not None, "precision_choice.json beside the kept model"
    candidates = recorded["candidates"]
    assert set(candidates) == {"fp32", "int8"} and all(c["fps"] > 0 for c in candidates.values())
    assert candidates["int8"]["agreement"]["images"] == 2, "INT8 judged on the held-back images"
    chosen = recorded["chosen"]
    assert chosen == choice.pick(candidates) and recorded["device"] == "cpu"
    artifact = Path(module.artifact)
    assert type(module.engine).__name__ == "ToyEngine" and module.engine.precision == chosen
    assert module.engine.calls >= len(images)
    assert (_quantize_linear_nodes(artifact) > 0) is (chosen == "int8"), "the engine runs the chosen file"
    assert [p.name for p in artifact.parent.glob("*.onnx")] == [artifact.name], "only the kept file is left"
    misses = _misses_pytorch(stock, results, chosen, recorded["tolerance"])
    assert not misses, f"{chosen}: {misses}"

    broken, broken_results = _auto("toyort_broken", detect_pt, images, calibration_dir, tmp_path / "broken")
    broken_choice = choice.read_choice(broken.predictor.model.artifact)
    assert broken.predictor.model.engine.scale == 1.25 and broken_choice is not None
    misses = _misses_pytorch(stock, broken_results, broken_choice["chosen"], broken_choice["tolerance"])
    assert misses, "scaled outputs passed the comparison with PyTorch"


# -- no engine names outside the engines -------------------------------------------------------------------
def _allowed(path: Path) -> bool:
    """The engine packages and their activation modules may name their engine."""
    relative = path.relative_to(PACKAGE).parts
    return (relative[:1] == ("backends",) and relative[1:2] and relative[1] in ENGINE_NAMES) or (
        len(relative) == 1 and path.stem in ENGINE_NAMES
    )


def _engine_name_uses(source: str, where: str) -> list[str]:
    """Comparisons with an engine's name and imports of an engine package in ``source`` (the module ``where``)."""
    tree = ast.parse(source, where)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for operand in operands:
                names = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
                for name in names:
                    if isinstance(name, ast.Constant) and name.value in ENGINE_NAMES:
                        found.append(f"{where}:{node.lineno}: compares with {name.value!r}")
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for module in modules:
            parts = module.split(".")
            if parts[:2] == ["yolo_adapters", "backends"] and len(parts) > 2 and parts[2] in ENGINE_NAMES:
                found.append(f"{where}:{node.lineno}: imports {module}")
                break
    return found


def test_the_scan_sees_a_branch_on_an_engine_name() -> None:
    """The scan below can fail: it finds each kind of use in a module written to have them."""
    sample = (
        "import yolo_adapters.backends.openvino.engine\n"
        "from yolo_adapters.backends import onnxruntime\n"
        "def f(backend, claims, device='openvino'):\n"
        "    return backend == 'ascend' or 'onnxruntime' in claims or backend in ('openvino',)\n"
    )
    found = _engine_name_uses(sample, "sample.py")
    assert len(found) == 5, found  # two imports, three comparisons; the default argument is no branch


def test_no_module_outside_the_engines_branches_on_an_engine_name() -> None:
    """Every engine difference is a plugin hook: outside ``backends/<engine>/`` and the activation modules, no
    module compares with "openvino", "onnxruntime" or "ascend" nor imports an engine package (a default argument
    such as ``device="openvino"`` is not a branch and is allowed)."""
    found = [
        use
        for path in sorted(PACKAGE.rglob("*.py"))
        if not _allowed(path)
        for use in _engine_name_uses(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE.parent)))
    ]
    assert not found, "\n".join(found)
