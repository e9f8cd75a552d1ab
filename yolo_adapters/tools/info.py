"""``yolo-adapters info``: what this machine has (versions, backends, engine devices, cache, patch state).

Nothing here imports torch or Ultralytics, and an engine package is imported only when its backend reports it
installed, so ``info`` works (and says why) on a machine where a backend's package is missing or broken.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

#: Distributions whose versions ``info`` reports (None when not installed).
PACKAGES = ("ultralytics", "torch", "openvino", "onnxruntime", "onnx", "ais_bench", "aclruntime", "wrapt", "tqdm")


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _origin(backend: Any) -> str:
    module = type(backend).__module__
    return "built-in" if module.startswith("yolo_adapters.") else module.split(".")[0]


def describe_backend(name: str) -> dict[str, Any]:
    """One backend: can it run here (and why not), where it comes from, the devices and tools it sees."""
    from yolo_adapters.core import registry

    try:
        backend = registry.get_backend(name)
    except Exception as exc:  # a broken third-party plugin is listed, not fatal
        return {
            "name": name,
            "origin": "?",
            "available": False,
            "why_not": f"could not be loaded: {exc}",
            "devices": [],
            "environment": {},
        }
    try:
        missing = backend.missing_requirements()
    except Exception as exc:
        missing = f"its availability check failed: {type(exc).__name__}: {exc}"
    devices: list[str] = []
    if missing is None:
        try:
            devices = list(backend.available_devices())
        except Exception as exc:  # a broken driver shows up here instead of crashing `info`
            devices = [f"error: {exc}"]
    try:
        environment = dict(backend.environment())
    except Exception as exc:
        environment = {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "name": backend.name,
        "origin": _origin(backend),
        "available": missing is None,
        "why_not": missing,
        "devices": devices,
        "environment": environment,
    }


def patch_state() -> dict[str, Any]:
    """Whether the patches are on in *this* process, and what turns them on in others."""
    from yolo_adapters.core.settings import disabled
    from yolo_adapters.integration import activation, patching
    from yolo_adapters.integration.patching.targets import TARGETS

    return {
        "installed": patching.is_installed(),
        "patched": {f"{t.module}.{n}": patching.is_patched(t.module, n) for t in TARGETS for n in t.names},
        "active_backend": activation.active(),
        "startup_hook": "yolo_adapters._startup" in sys.modules,
        "disabled": disabled(),
        "YOLO_ADAPTERS": os.environ.get("YOLO_ADAPTERS") or None,
    }


def collect_info() -> dict[str, Any]:
    """Versions, backends and why one cannot run, devices, cache and patch state (``yolo-adapters info --json``)."""
    from yolo_adapters import __version__
    from yolo_adapters.core import registry
    from yolo_adapters.core.cache import ArtifactCache

    cache = ArtifactCache()
    entries = cache.entries()
    patches = patch_state()
    return {
        "yolo_adapters": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "backends": [describe_backend(name) for name in registry.backend_names()],
        "cache": {"root": str(cache.root), "entries": len(entries), "bytes": sum(e["size"] for e in entries)},
        "patches": patches,
        # kept for scripts written against the first version of this output
        "active_backend": patches["active_backend"],
        "patches_installed": patches["installed"],
    }


def _environment_lines(env: dict[str, Any]) -> list[str]:
    lines = []
    for key, value in env.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} ({v})" if v else str(k) for k, v in value.items()) or "none"
        elif isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value)) or "none"
        elif value is None or value is False:
            value = "no" if value is False else "not found"
        elif value is True:
            value = "yes"
        lines.append(f"      {key}: {value}")
    return lines


def format_info(info: dict[str, Any]) -> str:
    out = [f"yolo_adapters {info['yolo_adapters']}  Python {info['python']}  ({info['platform']})", "packages:"]
    out += [f"  {name:<12} {value or 'not installed'}" for name, value in info["packages"].items()]
    out.append("backends:")
    for b in info["backends"]:
        state = "ready" if b["available"] else f"unavailable: {b['why_not']}"
        out.append(f"  {b['name']:<12} [{b['origin']}] {state}")
        if b["available"]:
            out.append(f"      devices: {', '.join(b['devices']) or 'none reported'}")
        out += _environment_lines(b["environment"])
    c = info["cache"]
    out.append(f"cache: {c['root']} ({c['entries']} entries, {c['bytes'] / 1e6:.1f} MB)")
    p = info["patches"]
    patched = [name for name, on in p["patched"].items() if on]
    out.append(
        f"patches in this process: {'installed' if p['installed'] else 'not installed'}"
        f" ({', '.join(patched) if patched else 'no Ultralytics name wrapped yet'}); "
        f"active backend: {p['active_backend'] or 'none'}"
    )
    out.append(
        f"startup hook: {'loaded' if p['startup_hook'] else 'not loaded'}"
        f"{' (disabled by YOLO_ADAPTERS_DISABLE)' if p['disabled'] else ''}; YOLO_ADAPTERS={p['YOLO_ADAPTERS'] or '(unset)'}"
    )
    return "\n".join(out)
