"""Backend discovery through the ``yolo_adapters.backends`` entry-point group.

Built-in backends are found the same way as third-party ones; nothing here imports an engine
package (openvino, onnxruntime, ais_bench) until a backend is actually loaded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from yolo_adapters.core.settings import split_spec
from yolo_adapters.errors import BackendUnavailableError, UnknownBackendError

if TYPE_CHECKING:
    from yolo_adapters.backends.base import BackendPlugin

ENTRY_POINT_GROUP = "yolo_adapters.backends"
LOGGER = logging.getLogger(__name__)

_lock = threading.Lock()
_entry_points: dict | None = None
_instances: dict[str, BackendPlugin] = {}
_extra: dict[str, type] = {}  # registered from code (tests, notebooks), not through packaging


def _discover() -> dict:
    global _entry_points
    if _entry_points is None:
        from importlib.metadata import entry_points

        try:
            eps = entry_points(group=ENTRY_POINT_GROUP)
        except TypeError:  # Python < 3.10
            eps = entry_points().get(ENTRY_POINT_GROUP, [])  # type: ignore[arg-type]
        _entry_points = {ep.name: ep for ep in eps}
    return _entry_points


def backend_names() -> list[str]:
    """Every registered backend name, whether or not its engine is installed."""
    with _lock:
        return sorted({*_discover(), *_extra})


def register(name: str, backend_cls: type) -> None:
    """Register a backend class from code; packages should use the entry-point group instead."""
    with _lock:
        _extra[name] = backend_cls
        _instances.pop(name, None)


def get_backend(name: str) -> BackendPlugin:
    """The backend instance registered as ``name`` (loaded on first use)."""
    key = name.strip().lower()
    with _lock:
        if key in _instances:
            return _instances[key]
        cls = _extra.get(key)
        if cls is None:
            ep = _discover().get(key)
            if ep is None:
                known = ", ".join(sorted({*_discover(), *_extra})) or "none"
                raise UnknownBackendError(
                    f"Unknown yolo_adapters backend {name!r}. Registered backends: {known}. "
                    f"Third-party backends register under the entry-point group {ENTRY_POINT_GROUP!r}."
                )
            cls = ep.load()
        instance = cls()
        _instances[key] = instance
        return instance


def iter_backends() -> list[BackendPlugin]:
    """All registered backends; one that fails to load is logged and skipped."""
    found = []
    for name in backend_names():
        try:
            found.append(get_backend(name))
        except Exception as exc:  # a broken third-party plugin must not break the others
            LOGGER.warning("backend %r could not be loaded: %s", name, exc)
    return found


def available_backends() -> list[str]:
    """Names of the backends whose engine can run in this environment."""
    return [b.name for b in iter_backends() if b.missing_requirements() is None]


def backend_for_device_prefix(prefix: str) -> BackendPlugin | None:
    """The backend claiming an Ultralytics device string prefix such as "openvino" or "intel"."""
    prefix = prefix.lower()
    for backend in iter_backends():
        if backend.claims_device(prefix):
            return backend
    return None


class ResolvedSpec(NamedTuple):
    """A ``backend[:device]`` text resolved: the plugin, its engine device, and the validated options."""

    plugin: BackendPlugin
    device: str
    #: ``validate_options``'s result with ``"device"`` set; empty when no options were given.
    options: dict[str, Any]


def plugin_for_prefix(prefix: str) -> BackendPlugin:
    """The plugin named ``prefix``, or claiming it as a device alias ("intel"); UnknownBackendError otherwise."""
    try:
        return get_backend(prefix)
    except UnknownBackendError:
        claimed = backend_for_device_prefix(prefix)
        if claimed is None:
            raise
        return claimed


def resolve_spec(
    text: str, *, options: Mapping[str, Any] | None = None, require_installed: bool = True
) -> ResolvedSpec:
    """``"openvino:gpu"`` -> (the OpenVINO plugin, ``"GPU"``, options): the one path from user text to a plugin.

    Raises UnknownBackendError for a name no plugin claims, BackendUnavailableError (the plugin's own sentence)
    when ``require_installed`` and the engine cannot run here, and the plugin's OptionError for bad ``options``.
    The device is the text's, else ``options["device"]``, else the plugin's default, always normalised.
    """
    prefix, spec = split_spec(text)
    plugin = plugin_for_prefix(prefix)
    if require_installed:
        missing = plugin.missing_requirements()
        if missing:
            raise BackendUnavailableError(missing)
    checked = plugin.validate_options(options) if options is not None else {}
    if spec:
        device = plugin.normalize_device(prefix, spec)
    elif checked.get("device"):
        device = plugin.normalize_device(plugin.name, str(checked["device"]))
    else:
        device = plugin.default_device
    if options is not None:
        checked["device"] = device
    return ResolvedSpec(plugin, device, checked)
