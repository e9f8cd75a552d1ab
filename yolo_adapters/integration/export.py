"""Turning an Ultralytics PyTorch model into a backend artifact, once, through the cache.

Conversion is Ultralytics' own exporter run on a copy of the model inside a cache staging folder, so the
artifact carries Ultralytics' metadata and nothing half-written is ever published.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from yolo_adapters.core.cache import ArtifactCache, make_key
from yolo_adapters.errors import ConversionError, ModelFormatError

if TYPE_CHECKING:
    import torch

    from yolo_adapters.backends.base import BackendPlugin, ExportPlan

LOGGER = logging.getLogger(__name__)


def weights_digest(model: torch.nn.Module) -> str:
    """Content hash of the weights and architecture: the same model converts once, wherever it came from."""
    import torch

    digest = hashlib.sha256()
    digest.update(json.dumps(getattr(model, "yaml", {}) or {}, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        data = tensor.detach().cpu().contiguous()
        digest.update(str(data.dtype).encode() + str(tuple(data.shape)).encode())
        digest.update(data.view(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def load_checkpoint(path: Path) -> torch.nn.Module:
    """A .pt through Ultralytics' own loader, with a clear error for a broken file."""
    from ultralytics import YOLO

    try:
        model: Any = YOLO(str(path)).model
        return model
    except Exception as exc:
        raise ModelFormatError(
            f"Could not load {path} as an Ultralytics checkpoint ({type(exc).__name__}: {exc}). "
            "Is the file complete? Download or re-save it."
        ) from exc


def _exporter_args(plan: ExportPlan) -> dict[str, Any]:
    from ultralytics.cfg import DEFAULT_CFG_DICT

    args: dict[str, Any] = {
        "format": plan.format,
        "imgsz": list(plan.imgsz),
        "batch": plan.batch,
        "dynamic": plan.dynamic,
        "device": "cpu",
        "verbose": False,
    }
    if plan.precision == "fp16":
        if "quantize" in DEFAULT_CFG_DICT:  # Ultralytics >= 8.4.1xx replaced half/int8 with quantize
            args["quantize"] = 16
        else:
            args["half"] = True
    args.update(dict(plan.extra))
    return {k: v for k, v in args.items() if k in DEFAULT_CFG_DICT or k == "format"}


#: The opset the TorchScript exporter gets when a release chose none that it supports: 8.1-8.3 derive theirs from
#: torch's ``symbolic_opsetN`` modules, of which torch >= 2.9 keeps only 9 and 10 (too old for einsum, LayerNorm).
TORCHSCRIPT_MIN_OPSET = 17


@contextmanager
def torchscript_onnx_export(min_opset: int | None = TORCHSCRIPT_MIN_OPSET) -> Iterator[None]:
    """While Ultralytics exports, ``torch.onnx.export`` calls that do not choose an exporter get torch's TorchScript
    one (``dynamo=False``), the one Ultralytics releases before 8.4 were written for, at ``min_opset`` or newer. Since
    torch 2.9 the default is the dynamo exporter, which needs ``onnxscript`` (nothing a user's install pulls in).
    Releases that choose (8.4) are left as they are; ``min_opset=None`` keeps the opset the caller asked for."""
    import inspect

    import torch.onnx
    import wrapt

    original = torch.onnx.export
    try:
        chooses = "dynamo" in inspect.signature(original).parameters
    except (TypeError, ValueError):
        chooses = False
    if not chooses:  # a torch without the dynamo exporter: nothing to choose
        yield
        return

    @wrapt.decorator
    def legacy_default(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        if "dynamo" not in kwargs:
            kwargs["dynamo"] = False
            if min_opset is not None and int(kwargs.get("opset_version") or 0) < min_opset:
                kwargs["opset_version"] = min_opset
        return wrapped(*args, **kwargs)

    torch.onnx.export = legacy_default(original)
    try:
        yield
    finally:
        torch.onnx.export = original


def export_model(model: torch.nn.Module, plan: ExportPlan, out_dir: Path) -> Path:
    """Run Ultralytics' exporter on a copy of ``model``; the result lands inside ``out_dir``."""
    import torch
    from ultralytics.engine.exporter import Exporter

    clone: Any = copy.deepcopy(model).cpu().float()
    clone.pt_path = str(out_dir / "model.pt")  # the exporter names its output after this path
    if not hasattr(clone, "args") or not isinstance(clone.args, dict):
        clone.args = {}
    try:
        with (
            torch.inference_mode(False),
            torch.no_grad(),
            torchscript_onnx_export(None if "opset" in dict(plan.extra) else TORCHSCRIPT_MIN_OPSET),
        ):
            result = Exporter(overrides=_exporter_args(plan))(model=clone)
    except Exception as exc:
        raise ConversionError(f"Ultralytics could not export the model to {plan.format}: {exc}") from exc
    if not result:
        raise ConversionError(f"Ultralytics' {plan.format} export produced no file (see the log above).")
    return Path(result)


def prepare_artifact(
    model: torch.nn.Module,
    backend: BackendPlugin,
    plan: ExportPlan,
    cache_dir: str | None = None,
    label: str = "model",
) -> Path:
    """The cached artifact for ``model`` under ``plan``, converting on first use (with a progress bar)."""
    cache, key, fields = _cache_entry(model, backend, plan, cache_dir, label)
    found = cache.lookup(key)
    if found is not None:
        return found

    with tqdm(total=2, desc=f"yolo_adapters: converting {label} for {backend.name}", unit="step") as bar:

        def build(staging: Path) -> Path:
            bar.set_postfix_str(f"Ultralytics export to {plan.format}")
            with quiet_ultralytics():
                exported = export_with_fallback(model, backend, plan, staging)
            bar.update()
            bar.set_postfix_str("finishing")
            artifact = backend.finish_artifact(exported, plan)
            bar.update()
            return artifact

        try:
            artifact = cache.get_or_build(key, build, fields)
        except OSError as exc:
            raise ConversionError(f"Could not write the converted model into {cache.root}: {exc}") from exc
        bar.set_postfix_str(f"cached in {cache.root}")
    return artifact


def cached_artifact(
    model: torch.nn.Module,
    backend: BackendPlugin,
    plan: ExportPlan,
    cache_dir: str | None = None,
    label: str = "model",
    digest: str | None = None,
) -> Path | None:
    """The artifact ``prepare_artifact`` would return if it is in the cache already, else None (nothing converted).
    ``digest``: ``weights_digest(model)`` when the caller has it (asked once per shape of one model)."""
    cache, key, _ = _cache_entry(model, backend, plan, cache_dir, label, digest)
    return cache.lookup(key)


def _cache_entry(
    model: torch.nn.Module,
    backend: BackendPlugin,
    plan: ExportPlan,
    cache_dir: str | None,
    label: str,
    digest: str | None = None,
) -> tuple[ArtifactCache, str, Mapping[str, Any]]:
    import ultralytics

    fields: Mapping[str, Any] = {
        "weights": digest or weights_digest(model),
        "task": getattr(model, "task", ""),
        "backend": backend.name,
        "plan": plan,
        "ultralytics": ultralytics.__version__,
        "engine": backend.engine_version(),
    }
    return ArtifactCache(cache_dir), make_key(fields, f"{label}-{backend.name}"), fields


def export_with_fallback(model: torch.nn.Module, backend: BackendPlugin, plan: ExportPlan, staging: Path) -> Path:
    """Ultralytics' own export to ``plan.format``; when that fails and the plugin knows another route (its
    ``fallback_plan``), that export instead, which its ``finish_artifact`` completes. Conversion is chosen by what
    works with the installed versions, not by a version table; when nothing works, one error names the versions."""
    try:
        return export_model(model, plan, staging)
    except ConversionError as first:
        fallback = backend.fallback_plan(plan)
        if fallback is None:
            raise
        LOGGER.warning(
            "%s; converting through Ultralytics' %s export instead.",
            str(first).splitlines()[0],
            fallback.format,
        )
        try:
            return export_model(model, fallback, staging)
        except ConversionError as second:
            import ultralytics

            raise ConversionError(
                f"Ultralytics {ultralytics.__version__} cannot convert the model for the {backend.name} backend with the "
                f"installed engine ({backend.engine_version()}): its {plan.format} export failed ({first.__cause__ or first}) and the {fallback.format} route "
                f"failed too ({second.__cause__ or second}). Fix: upgrade Ultralytics (pip install -U ultralytics), or "
                f"install the engine release it was made for (docs/compatibility.md lists the pairs CI runs)."
            ) from second


@contextmanager
def quiet_ultralytics() -> Iterator[None]:
    """Ultralytics' exporter logs a page per export; keep its warnings, drop its chatter."""
    from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER

    level = ULTRALYTICS_LOGGER.level
    ULTRALYTICS_LOGGER.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        ULTRALYTICS_LOGGER.setLevel(level)
