"""`yolo-adapters bench` reporting: each row is compared with the right limit, and benchmarks/bench.py --docs rewrites
only its block of docs/benchmarks.md.

Nothing here is timed: the report is synthetic, so the ratios it checks are known exactly.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from yolo_adapters.tools import bench


def _load_benchmark(name: str) -> ModuleType:
    """A script of benchmarks/ (not a package) loaded as a module."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


maintainers_bench = _load_benchmark("bench")


def _runs(*fps: float) -> list[dict]:
    return [{"frames": 100, "fps": f, "gaps": [1000 / f] * 100} for f in fps]


@pytest.fixture
def report() -> dict:
    results = {
        "Ultralytics native OpenVINO (FP32)": _runs(30, 31, 29),
        bench.NATIVE_AS_SHIPPED: _runs(40),
        bench.THROUGHPUT: _runs(50, 48, 52),
        "yolo_adapters openvino throughput, static 640x640": _runs(33),
        bench.THROUGHPUT_INT8: _runs(85, 90, 87.5),
        bench.LIMIT_SQUARE: _runs(37.5),
        bench.LIMIT_RECT: _runs(62.5),
        bench.LIMIT_DECODE: _runs(50),
        bench.LIMIT_INT8: _runs(125),
        bench.THROUGHPUT_BF16: _runs(60),
        bench.LIMIT_BF16: _runs(80),
    }
    extras = {"single_native_ms": 36.0, "single_adapter_ms": 30.0, "single_ratio": 1.2, "single_runs": 5}
    return {"results": results, "extras": extras, "machine": "test machine", "imgsz": 640, "frames": 100, "repeats": 3}


def test_rows_are_compared_with_their_own_model_and_shape(report: dict) -> None:
    table = {r["row"]: r for r in bench.summarise(report)}
    assert table[bench.THROUGHPUT]["fps"] == 50 and table[bench.THROUGHPUT]["vs_native"] == pytest.approx(50 / 30)
    assert table[bench.THROUGHPUT]["vs_limit"] == pytest.approx(50 / 62.5)  # dynamic 640x384 model, its limit
    assert table["yolo_adapters openvino throughput, static 640x640"]["vs_limit"] == pytest.approx(33 / 37.5)
    assert table[bench.THROUGHPUT_INT8]["vs_limit"] == pytest.approx(87.5 / 125)  # the INT8 model's own limit
    assert table[bench.THROUGHPUT_BF16]["vs_limit"] == pytest.approx(60 / 80)  # the IR compiled bf16, its own limit
    assert table[bench.LIMIT_DECODE]["vs_limit"] == pytest.approx(50 / 62.5)  # what decoding costs the engine
    assert table[bench.LIMIT_RECT]["vs_limit"] == 1
    assert (table[bench.THROUGHPUT]["fps_min"], table[bench.THROUGHPUT]["fps_max"]) == (48, 52)


def test_render_states_the_decode_bound_and_int8_ratios(report: dict) -> None:
    text = bench.render(report, "yolo-adapters bench")
    assert "leave the engine 0.80x of its inference-only limit" in text
    assert f"{bench.THROUGHPUT} reaches 1.00x of that decode + letterbox + inference bound" in text
    assert "end to end 1.75x, inference only 2.00x" in text
    assert "as shipped (bf16 here, 640x640) 40.00 FPS -> 1.50x; against our FP32 1.20x" in text
    assert "ratio 1.20 (native/ours; >= 0.98 wanted)" in text


def test_docs_block_is_replaced_and_the_rest_kept(report: dict, tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text(
        "# Benchmarks\n\nhand-written analysis\n\n<!-- bench:start -->\nold table\n<!-- bench:end -->\n\ntail\n"
    )
    maintainers_bench.write_docs(report, "python benchmarks/bench.py --docs docs", tmp_path)
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\nhand-written analysis\n\n<!-- bench:start -->")
    assert "old table" not in text and text.endswith("<!-- bench:end -->\n\ntail\n")
    assert "Command: `python benchmarks/bench.py --docs docs`" in text and "Machine: test machine." in text
    assert (tmp_path / "benchmark.png").stat().st_size > 10_000 and (tmp_path / "benchmark.json").is_file()
