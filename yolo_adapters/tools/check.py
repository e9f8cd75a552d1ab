"""Does the engine still give PyTorch's answers? ``yolo-adapters check`` and ``yolo_adapters.check()``.

PyTorch (the reference ``.pt``) and each chosen engine run on the same images; every engine result is matched to
the PyTorch result with :func:`yolo_adapters.compare.parity.compare_results` and held to the tolerances the test suite
uses (:data:`yolo_adapters.compare.parity.DEFAULT_TOLERANCES`).

    report = yolo_adapters.check("yolo11n-pose.pt", backends=["openvino", "onnxruntime"])
    report.passed                     # False when any engine misses a tolerance on any image
    print(report.table())

The engine model is normally converted from the reference ``.pt`` (through the cache, as ``predict`` would).
To check a model converted elsewhere, for example the IR you are about to ship, pass it as ``engine_model``
(CLI: ``--engine-model PATH``): the ``.pt`` stays the reference and the given file is what runs on the engine.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from yolo_adapters.compare.parity import DEFAULT_TOLERANCES, Agreement, Tolerances, compare_results
from yolo_adapters.core.images import IMAGE_SUFFIXES
from yolo_adapters.core.model_info import task_of
from yolo_adapters.errors import AdapterError, ModelFormatError, OptionError


# -- the report ---------------------------------------------------------------------------------------------
@dataclass
class ImageCheck:
    """One image, one engine: how its result agrees with PyTorch's."""

    image: str
    agreement: Agreement
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class EngineCheck:
    """Every image on one engine (``backend:device``), with the artifact that ran."""

    backend: str
    device: str
    artifact: str | None = None
    images: list[ImageCheck] = field(default_factory=list)
    engine_calls: int = 0  # inferences the engine ran (0 would mean PyTorch answered, not the engine)
    error: str | None = None  # the engine could not run at all
    chosen_precision: str | None = None  # precision="auto": what the conversion kept (fp32, bf16, int8)

    @property
    def name(self) -> str:
        return f"{self.backend}:{self.device}" + (f" (auto: {self.chosen_precision})" if self.chosen_precision else "")

    @property
    def failures(self) -> list[str]:
        found = [f"{self.name}: {self.error}"] if self.error else []
        if not self.error and self.images and self.engine_calls == 0:
            found.append(f"{self.name}: the engine never ran (Ultralytics used its own model)")
        for item in self.images:
            found += [f"{self.name} {Path(item.image).name}: {reason}" for reason in item.failures]
        return found

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> dict[str, Any]:
        """The per-engine row: worst values over all images (means weighted by matched detections)."""
        agreements = [i.agreement for i in self.images]
        matched = sum(a.matched for a in agreements)

        def weighted(attr: str) -> float:
            return sum(getattr(a, attr) * a.matched for a in agreements) / matched if matched else 1.0

        return {
            "images": len(agreements),
            "reference": sum(a.reference for a in agreements),
            "candidate": sum(a.candidate for a in agreements),
            "matched": matched,
            "min_box_iou": min((a.min_box_iou for a in agreements), default=1.0),
            "mean_box_iou": weighted("mean_box_iou"),
            "max_score_diff": max((a.max_score_diff for a in agreements), default=0.0),
            "max_keypoint_px": max((a.max_keypoint_px for a in agreements), default=0.0),
            "mean_keypoint_px": weighted("mean_keypoint_px") if matched else 0.0,
            "min_mask_iou": min((a.min_mask_iou for a in agreements), default=1.0),
            "top1_agree": sum(a.top1_agree for a in agreements),
            "max_prob_diff": max((a.max_prob_diff for a in agreements), default=0.0),
            "pixel_agreement": min((a.pixel_agreement for a in agreements), default=1.0),
            "decided_mismatches": sum(a.decided_mismatches for a in agreements),
            "max_mismatch_margin": max((a.max_mismatch_margin for a in agreements), default=0.0),
            "max_depth_diff": max((a.max_depth_diff for a in agreements), default=0.0),
        }


@dataclass
class CheckReport:
    """What ``check`` found; ``passed`` is False when any engine fails on any image."""

    model: str
    task: str
    imgsz: Any
    conf: float
    tolerances: Tolerances
    sources: list[str]
    engines: list[EngineCheck]

    @property
    def passed(self) -> bool:
        return bool(self.engines) and all(e.passed for e in self.engines)

    @property
    def failures(self) -> list[str]:
        return [reason for e in self.engines for reason in e.failures]

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "task": self.task,
            "imgsz": self.imgsz,
            "conf": self.conf,
            "tolerances": asdict(self.tolerances),
            "images": self.sources,
            "passed": self.passed,
            "failures": self.failures,
            "engines": [
                {
                    "backend": e.backend,
                    "device": e.device,
                    "artifact": e.artifact,
                    "engine_calls": e.engine_calls,
                    "chosen_precision": e.chosen_precision,
                    "error": e.error,
                    "passed": e.passed,
                    "summary": e.summary(),
                    "images": [
                        {"image": i.image, "passed": i.passed, "failures": i.failures, **i.agreement.as_dict()}
                        for i in e.images
                    ],
                }
                for e in self.engines
            ],
        }

    def table(self, per_image: bool = False) -> str:
        """The agreement table, with the columns that matter for the model's task."""
        columns = _columns(self.task)
        header = ["engine", *[c[0] for c in columns], "result"]
        rows: list[list[str]] = []
        for engine in self.engines:
            if engine.error:
                rows.append([engine.name, *["-"] * len(columns), "FAIL"])
                continue
            rows.append(
                [engine.name, *[fmt(engine.summary()) for _, fmt in columns], "PASS" if engine.passed else "FAIL"]
            )
            if per_image:
                for item in engine.images:
                    values = _image_summary(item.agreement)
                    rows.append(
                        [
                            f"  {Path(item.image).name}",
                            *[fmt(values) for _, fmt in columns],
                            "pass" if item.passed else "fail",
                        ]
                    )
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        tol = self.tolerances
        limits = {
            "classify": f"same top-1, probabilities within {tol.prob}",
            "pose": f"box IoU >= {tol.box_iou}, score within {tol.score}, keypoints within {tol.keypoint_px} px",
            "segment": f"box IoU >= {tol.box_iou}, score within {tol.score}, mask IoU >= {tol.mask_iou}",
            "semantic": f">= {tol.semantic_pixels:.0%} of pixels with PyTorch's class, all where its margin > {tol.semantic_tie}",
            "depth": f"depth within {tol.depth_range} of the map's range",
        }.get(self.task, f"box IoU >= {tol.box_iou}, score within {tol.score}")
        out = [
            f"{Path(self.model).name} ({self.task}) against PyTorch on {len(self.sources)} image(s), imgsz {self.imgsz}",
            line(header),
            line(["-" * w for w in widths]),
            *[line(r) for r in rows],
            f"tolerances: {limits}; every detection scoring above conf {self.conf} matched",
        ]
        failures = self.failures
        if failures:
            shown = failures[:20]
            out += [f"FAIL  {reason}" for reason in shown]
            if len(failures) > len(shown):
                out.append(f"... and {len(failures) - len(shown)} more (see --json)")
        out.append("PASSED" if self.passed else "FAILED")
        return "\n".join(out)


def _image_summary(a: Agreement) -> dict[str, Any]:
    return {**a.as_dict(), "top1_agree": int(a.top1_agree), "images": 1}


def _columns(task: str) -> list[tuple[str, Any]]:
    matched = ("matched", lambda s: f"{s['matched']}/{s['reference']} (engine {s['candidate']})")
    iou = ("box IoU min/mean", lambda s: f"{s['min_box_iou']:.4f}/{s['mean_box_iou']:.4f}" if s["matched"] else "-")
    score = ("max score diff", lambda s: f"{s['max_score_diff']:.2e}")
    if task == "semantic":
        return [
            ("min pixels agree", lambda s: f"{s['pixel_agreement']:.4f}"),
            ("differing non-tie pixels", lambda s: str(s["decided_mismatches"])),
            ("max margin differing", lambda s: f"{s['max_mismatch_margin']:.3f}"),
        ]
    if task == "depth":
        return [("max depth diff / range", lambda s: f"{s['max_depth_diff']:.2e}")]
    if task == "classify":
        return [
            ("top-1 agree", lambda s: f"{s['top1_agree']}/{s['images']}"),
            ("max prob diff", lambda s: f"{s['max_prob_diff']:.2e}"),
        ]
    columns = [matched, iou, score]
    if task == "pose":
        columns.append(("keypoint px max/mean", lambda s: f"{s['max_keypoint_px']:.3f}/{s['mean_keypoint_px']:.3f}"))
    if task == "segment":
        columns.append(("min mask IoU", lambda s: f"{s['min_mask_iou']:.4f}"))
    return columns


# -- running it -----------------------------------------------------------------------------------------------
def default_images() -> list[Path]:
    """Ultralytics' bundled bus.jpg and zidane.jpg (no download)."""
    from ultralytics.utils import ASSETS

    return [Path(ASSETS) / "bus.jpg", Path(ASSETS) / "zidane.jpg"]


def resolve_images(source: str | Path | Sequence[str | Path] | None) -> list[Path]:
    """Image files from files, folders (their images, sorted) and glob patterns; None -> the bundled two."""
    if source is None:
        return default_images()
    items = [source] if isinstance(source, (str, Path)) else list(source)
    found: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True))
            if not matches:
                raise OptionError(
                    f"Source {item!r} is neither an image, a folder nor a glob pattern that matches files."
                )
            found += [p for p in matches if p.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise OptionError(f"No images ({', '.join(IMAGE_SUFFIXES)}) found in {', '.join(map(str, items))}.")
    return found


@contextmanager
def _stock() -> Iterator[None]:
    """PyTorch must run stock even when a backend is active in this process (YOLO_ADAPTERS=..., activate())."""
    from yolo_adapters.integration import activation

    previous = activation.current()
    if previous is not None:
        activation.deactivate()
    try:
        yield
    finally:
        if previous is not None:
            activation.activate(previous.backend, **dict(previous.options))


def _semantic_margin(model: Any, image: str, result: Any, args: dict[str, Any], device: str) -> Any:
    """PyTorch's per-pixel logit margin for a semantic ``result`` (None for other tasks): the raw logits of one more
    PyTorch run, captured where the predictor receives them, resized as the predictor resizes them."""
    if getattr(result, "semantic_mask", None) is None:
        return None
    from yolo_adapters.compare.parity import semantic_margin

    seen: list[tuple[Any, Any]] = []
    handle = model.predictor.model.register_forward_hook(lambda m, a, out: seen.append((a[0].shape[2:], out)))
    try:
        model.predict(image, device=device, **args)
    finally:
        handle.remove()
    if not seen:
        return None
    input_shape, out = seen[-1]
    logits = out[0] if isinstance(out, (list, tuple)) else out
    if logits.ndim != 4:  # a class map already (no logits to measure margins on)
        return None
    return semantic_margin(logits[0].detach().cpu(), input_shape, result.orig_shape)


def _infer_backend(engine_model: Path) -> str:
    """The backend that runs ``engine_model`` as it is; a backend whose own format it is (its first artifact suffix:
    an .onnx for ONNX Runtime) goes before one that also reads it (OpenVINO reads ONNX too)."""
    from yolo_adapters.core import registry

    claims = [b for b in registry.iter_backends() if b.find_artifact(engine_model) is not None]
    if not claims:
        raise ModelFormatError(
            f"No registered backend runs {engine_model} as it is; name one with --backend (registered: "
            f"{', '.join(registry.backend_names())})."
        )
    native = [b for b in claims if b.artifact_suffixes[:1] == (engine_model.suffix,)]
    return (native or claims)[0].name


def _as_users_load(model_path: Path, loaded: Any) -> Any:
    """The Ultralytics model a user predicts this checkpoint with: ``RTDETR`` for an RT-DETR (its predictor
    letterboxes square and reads the decoder's queries; ``YOLO`` would run NMS on them before 8.4), else ``loaded``
    (``YOLO`` picks YOLO-World and YOLOE from the file name itself)."""
    from ultralytics import RTDETR

    layers = getattr(getattr(loaded, "model", None), "model", None)
    if layers is not None and len(layers) and type(layers[-1]).__name__ == "RTDETRDecoder":
        return RTDETR(str(model_path))
    return loaded


def check(
    model: str | Path,
    backends: Sequence[str] | str | None = None,
    source: str | Path | Sequence[str | Path] | None = None,
    imgsz: int | Sequence[int] | None = None,
    *,
    engine_model: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    conf: float = 0.25,
    tol: Tolerances = DEFAULT_TOLERANCES,
    torch_device: str = "cpu",
    progress: bool = True,
) -> CheckReport:
    """Run the PyTorch ``model`` and each engine on the same images and compare every result.

    ``backends``: names, optionally with a device (``"openvino:GPU"``); default: every backend that can run here.
    ``source``: image files, folders or glob patterns; default: Ultralytics' bundled bus.jpg and zidane.jpg.
    ``imgsz``: inference (and conversion) size for both sides; default the model's.
    ``engine_model``: an engine model to check instead of converting ``model`` (one backend; inferred from the file).
    ``options``: backend options (``hint``, ``precision``, ...), applied to every engine.
    Raises AdapterError for bad arguments (unknown backend, missing engine, no images); an engine that fails
    while running is reported as a failure in the report, not raised.
    """
    from tqdm.auto import tqdm

    from yolo_adapters.core import registry
    from yolo_adapters.integration.activation import use
    from yolo_adapters.integration.module import EngineModule
    from yolo_adapters.integration.runtime import resolve_artifact

    model_path = Path(str(model))
    if model_path.suffix != ".pt" or not model_path.is_file():
        raise ModelFormatError(
            f"check compares against PyTorch: MODEL must be an existing Ultralytics .pt checkpoint, got {model_path}. "
            "To check an engine model (an OpenVINO IR, an .onnx, an .om), pass its .pt as MODEL and the engine "
            "model with --engine-model (engine_model= in Python)."
        )
    if isinstance(backends, str):
        backends = [backends]
    engine_path = Path(str(engine_model)) if engine_model is not None else None
    if engine_path is not None:
        if not engine_path.exists():
            raise ModelFormatError(f"Engine model {engine_path} does not exist.")
        if backends and len(backends) > 1:
            raise OptionError("--engine-model is one engine's model: give at most one --backend with it.")
        backends = list(backends or [_infer_backend(engine_path)])
    if not backends:
        backends = registry.available_backends()
        if not backends:
            raise AdapterError(
                "No backend can run here (see `yolo-adapters info`); install one, e.g. pip install 'yolo-adapters[openvino]'."
            )
    if imgsz is not None and not isinstance(imgsz, int):
        imgsz = [int(v) for v in imgsz]
        imgsz = imgsz[0] if len(imgsz) == 1 else imgsz
    images = resolve_images(source)
    common = dict(options or {})
    if imgsz is not None:
        common["imgsz"] = imgsz

    # Validate every engine up front: a typo must not cost a conversion first.
    plans = [registry.resolve_spec(spec, options=common) for spec in backends]

    from ultralytics import RTDETR, YOLO

    try:
        reference = _as_users_load(model_path, YOLO(str(model_path)))
    except Exception as exc:
        raise ModelFormatError(
            f"Could not load {model_path} as an Ultralytics checkpoint ({type(exc).__name__}: {exc})."
        ) from exc
    task = task_of(reference)
    predict_args: dict[str, Any] = {"conf": conf, "verbose": False}
    if imgsz is not None:
        predict_args["imgsz"] = imgsz
    elif reference.overrides.get("imgsz"):
        # The checkpoint's own size (a model trained at 320 predicts at 320): the engine model, loaded from its
        # file, would otherwise predict at Ultralytics' default 640 and see other pixels than PyTorch.
        predict_args["imgsz"] = reference.overrides["imgsz"]

    engines: list[tuple[EngineCheck, Any, dict[str, Any]]] = []
    heads: dict[int, bool] = {}  # id(report) -> the engine model was exported end-to-end (NMS-free head)
    for backend, device, engine_options in plans:  # convert (own progress bar) and load before the image loop
        report = EngineCheck(backend=backend.name, device=device)
        engines.append((report, None, engine_options))
        try:
            backend.check_device(device)
            artifact = resolve_artifact(engine_path or model_path, backend, device, dict(engine_options))
            report.artifact = str(artifact)
            artifact_info = backend.artifact_info(artifact, engine_options)
            if artifact_info.task and artifact_info.task != task:
                raise ModelFormatError(
                    f"the engine model is a {artifact_info.task} model but {model_path.name} is a {task} model."
                )
            heads[id(report)] = bool(artifact_info.end2end)
            # an RT-DETR engine model runs with RT-DETR's predictor too; the rest as YOLO, told the task
            runner = RTDETR(str(artifact)) if isinstance(reference, RTDETR) else YOLO(str(artifact), task=task)
            engines[-1] = (report, runner, engine_options)
        except AdapterError as exc:
            report.error = str(exc)

    def reference_args(end2end: bool) -> dict[str, Any]:
        """PyTorch runs the head the engine model was exported with: a YOLO26 or YOLOv10 model exported NMS-free
        (end-to-end, ``nms=False``) is compared with PyTorch's one-to-one head (``nms=False`` when predicting)."""
        return dict(predict_args, nms=False) if end2end and hasattr(reference.model, "end2end") else predict_args

    bar = tqdm(images, desc="yolo_adapters: checking", unit="image", disable=not progress)
    for image in bar:
        bar.set_postfix_str(image.name)
        references: dict[tuple[bool, bool], tuple[Any, Any]] = {}

        def reference_result(
            rect: bool, end2end: bool, image: Path = image, references: dict = references
        ) -> tuple[Any, Any]:
            """PyTorch letterboxes as the engine did: minimal padding (Ultralytics' default) where the engine ran
            rect (a dynamic engine, or a static one at the source's rect shape), a full imgsz square where it ran
            square (rect=False), so both see the same pixels.
            Returns the result and, for a semantic model, PyTorch's per-pixel logit margin."""
            if (rect, end2end) not in references:
                model, args = reference, reference_args(end2end)
                with _stock():
                    result = model.predict(str(image), device=torch_device, rect=rect, **args)[0]
                    margin = _semantic_margin(model, str(image), result, dict(args, rect=rect), torch_device)
                references[(rect, end2end)] = (result, margin)
                if isinstance(model.predictor.model, EngineModule):  # pragma: no cover - a patch-layer bug
                    raise AdapterError(
                        "the PyTorch reference was routed to an engine; run check without YOLO_ADAPTERS set."
                    )
            return references[(rect, end2end)]

        for report, yolo, engine_options in engines:
            if yolo is None or report.error:
                continue
            try:
                with use(report.backend, **engine_options):
                    got = yolo.predict(str(image), **predict_args)[0]
            except Exception as exc:  # an engine failing mid-way is a failed check, not a crash
                report.error = f"{type(exc).__name__}: {exc}"
                continue
            adapter = getattr(yolo.predictor, "model", None)
            rect = bool(getattr(adapter, "ran_rect", True))  # a static model at the source's rect shape too
            expected, margin = reference_result(rect, heads.get(id(report), False))
            agreement = compare_results(expected, got, conf=conf, tol=tol, reference_margin=margin)
            report.images.append(ImageCheck(str(image), agreement, agreement.failures(tol)))
    bar.close()
    for report, yolo, engine_options in engines:
        adapter = getattr(getattr(yolo, "predictor", None), "model", None)
        if isinstance(adapter, EngineModule):
            report.engine_calls = adapter.calls
            if engine_options.get("precision") == "auto":  # say which precision was compared with PyTorch
                report.chosen_precision = getattr(adapter.engine, "precision", None)
    return CheckReport(
        model=str(model_path),
        task=task,
        imgsz=imgsz
        if imgsz is not None
        else list(getattr(reference.predictor, "imgsz", None) or []) or "model default",
        conf=conf,
        tolerances=tol,
        sources=[str(p) for p in images],
        engines=[r for r, _, _ in engines],
    )
