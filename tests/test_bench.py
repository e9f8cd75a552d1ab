"""`yolo-adapters bench` reporting: each row is compared with the right limit, and benchmarks/bench.py --docs rewrites
only its block of docs/benchmarks.md.

Nothing here is timed: the report is synthetic, so the ratios it checks are known exactly.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from yolo_adapters.backends.openvino.plugin import OpenVINOPlugin as OV
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


def _limits() -> dict[str, str]:
    """Each OpenVINO row's limit, as run() derives it from the plugin's bench_limits and the shape each row ran."""
    plugin = OV()
    rows = {bench.PYTORCH: bench._Row(lambda: (None, lambda: None), None, "pytorch")}
    for label in (OV.BENCH_NATIVE_FP32, OV.BENCH_NATIVE_AS_SHIPPED):
        rows[label] = bench._Row(lambda: (None, lambda: None), plugin, "native")
    for label, dynamic in (
        ("yolo_adapters openvino latency", True),
        (OV.BENCH_THROUGHPUT, True),
        ("yolo_adapters openvino throughput, static 640x640", False),
        (OV.BENCH_INT8, True),
        (OV.BENCH_BF16, True),
    ):
        rows[label] = bench._Row(lambda: (None, lambda: None), plugin, "ours")
        rows[label].dynamic = dynamic
    return bench._limit_map(rows, plugin.bench_limits())


@pytest.fixture
def report() -> dict:
    results = {
        OV.BENCH_NATIVE_FP32: _runs(30, 31, 29),
        OV.BENCH_NATIVE_AS_SHIPPED: _runs(40),
        OV.BENCH_THROUGHPUT: _runs(50, 48, 52),
        "yolo_adapters openvino throughput, static 640x640": _runs(33),
        OV.BENCH_INT8: _runs(85, 90, 87.5),
        OV.LIMIT_SQUARE: _runs(37.5),
        OV.LIMIT_RECT: _runs(62.5),
        OV.LIMIT_DECODE: _runs(50),
        OV.LIMIT_INT8: _runs(125),
        OV.BENCH_BF16: _runs(60),
        OV.LIMIT_BF16: _runs(80),
    }
    extras = {"single_native_ms": 36.0, "single_adapter_ms": 30.0, "single_ratio": 1.2, "single_runs": 5}
    # what run() records beside the figures: each row's limit (as _limit_map derives it), the native row, the bound
    return {
        "results": results,
        "extras": extras,
        "machine": "test machine",
        "imgsz": 640,
        "frames": 100,
        "repeats": 3,
        "backends": ["openvino"],
        "native": OV.BENCH_NATIVE_FP32,
        "limits": _limits(),
        "decode": [{"bound": OV.LIMIT_DECODE, "limit": OV.LIMIT_RECT, "row": OV.BENCH_THROUGHPUT}],
    }


def test_rows_are_compared_with_their_own_model_and_shape(report: dict) -> None:
    table = {r["row"]: r for r in bench.summarise(report)}
    assert table[OV.BENCH_THROUGHPUT]["fps"] == 50 and table[OV.BENCH_THROUGHPUT]["vs_native"] == pytest.approx(50 / 30)
    assert table[OV.BENCH_THROUGHPUT]["vs_limit"] == pytest.approx(50 / 62.5)  # dynamic 640x384 model, its limit
    assert table["yolo_adapters openvino throughput, static 640x640"]["vs_limit"] == pytest.approx(33 / 37.5)
    assert table[OV.BENCH_INT8]["vs_limit"] == pytest.approx(87.5 / 125)  # the INT8 model's own limit
    assert table[OV.BENCH_BF16]["vs_limit"] == pytest.approx(60 / 80)  # the IR compiled bf16, its own limit
    assert table[OV.LIMIT_DECODE]["vs_limit"] == pytest.approx(50 / 62.5)  # what decoding costs the engine
    assert table[OV.LIMIT_RECT]["vs_limit"] == 1
    assert (table[OV.BENCH_THROUGHPUT]["fps_min"], table[OV.BENCH_THROUGHPUT]["fps_max"]) == (48, 52)


def test_each_row_is_paired_with_the_limit_of_its_model_and_shape() -> None:
    limits = _limits()
    assert limits[bench.PYTORCH] == limits["yolo_adapters openvino latency"] == OV.LIMIT_RECT  # both 640x384
    assert limits[OV.BENCH_NATIVE_AS_SHIPPED] == limits["yolo_adapters openvino throughput, static 640x640"]
    assert limits[OV.BENCH_NATIVE_AS_SHIPPED] == OV.LIMIT_SQUARE  # static models: Ultralytics' IR at 640x640
    assert (limits[OV.BENCH_INT8], limits[OV.BENCH_BF16]) == (OV.LIMIT_INT8, OV.LIMIT_BF16)
    assert limits[OV.LIMIT_DECODE] == OV.LIMIT_RECT and limits[OV.LIMIT_RECT] == OV.LIMIT_RECT


def test_render_states_the_decode_bound_and_int8_ratios(report: dict) -> None:
    text = bench.render(report, "yolo-adapters bench")
    assert "leave the engine 0.80x of its inference-only limit" in text
    assert f"{OV.BENCH_THROUGHPUT} reaches 1.00x of that decode + letterbox + inference bound" in text
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
