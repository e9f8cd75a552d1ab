"""``yolo-adapters``: run unchanged programs on an engine, convert models ahead of time, inspect the setup.

    yolo-adapters run --backend openvino their_script.py ARGS
    yolo-adapters run --backend openvino -m their.module ARGS
    yolo-adapters run --backend openvino yolo predict model=yolo11n-pose.pt source=bus.jpg
    yolo-adapters convert yolo11n-pose.pt --backend openvino [--imgsz 640] [--precision fp16]
    yolo-adapters info [--json]
    yolo-adapters cache list|clear
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import runpy
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from .errors import AdapterError, OptionError


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``-o hint=throughput -o imgsz=[736,1280]`` -> {"hint": "throughput", "imgsz": [736, 1280]}."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise OptionError(f"Option {pair!r} must look like key=value (e.g. -o hint=throughput).")
        try:
            options[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            options[key.strip()] = raw
    return options


def _split_backend(text: str) -> tuple[str, dict[str, Any]]:
    backend, _, device = text.partition(":")
    return backend.strip().lower(), ({"device": device} if device else {})


# -- run ------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    """Activate in this process, then run the target as ``__main__`` (child processes inherit YOLO_ADAPTERS)."""
    from .activation import activate

    backend, options = _split_backend(args.backend)
    if args.device:
        options["device"] = args.device
    options.update(_parse_options(args.option))
    os.environ["YOLO_ADAPTERS"] = backend + (f":{options['device']}" if options.get("device") else "")
    activate(backend, **options)

    if args.module:
        sys.path.insert(0, os.getcwd())  # as `python -m` does
        sys.argv = [args.module, *args.args]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        return 0
    if not args.args:
        raise OptionError("Nothing to run: give a script, -m module, or a command such as `yolo predict ...`.")
    target, rest = args.args[0], args.args[1:]
    path = Path(target)
    if not path.is_file():
        found = shutil.which(target)
        if not found:
            raise OptionError(f"{target!r} is neither a file nor a command on PATH.")
        path = Path(found)
        if not _is_python_script(path):  # a native program: it activates through the startup hook
            os.execvpe(str(path), [target, *rest], os.environ)
    sys.argv = [str(path), *rest]
    sys.path.insert(0, str(path.resolve().parent))
    runpy.run_path(str(path), run_name="__main__")
    return 0


def _is_python_script(path: Path) -> bool:
    if path.suffix == ".py":
        return True
    try:
        with path.open("rb") as handle:
            first = handle.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


# -- convert ----------------------------------------------------------------------------------------
def cmd_convert(args: argparse.Namespace) -> int:
    from . import registry
    from .runtime import resolve_artifact

    backend_name, options = _split_backend(args.backend)
    backend = registry.get_backend(backend_name)
    missing = backend.missing_requirements()
    if missing:
        raise AdapterError(missing)
    if args.device:
        options["device"] = args.device
    if args.imgsz:
        options["imgsz"] = args.imgsz[0] if len(args.imgsz) == 1 else list(args.imgsz)
    if args.batch:
        options["batch"] = args.batch
    if args.precision:
        options["precision"] = args.precision
    if args.dynamic is not None:
        options["dynamic"] = args.dynamic
    options.update(_parse_options(args.option))
    device = backend.normalize_device(backend.name, str(options.get("device") or ""))
    options = backend.validate_options(options)
    artifact = resolve_artifact(args.model, backend, device, options)
    print(artifact)
    return 0


# -- info and cache ---------------------------------------------------------------------------------
def collect_info() -> dict[str, Any]:
    """Versions, backends and why one cannot run, devices, cache and patch state."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__, activation, patching, registry
    from .cache import ArtifactCache

    def ver(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    backends = []
    for backend in registry.iter_backends():
        missing = backend.missing_requirements()
        devices: list[str] = []
        if missing is None:
            try:
                devices = backend.available_devices()
            except Exception as exc:  # a broken driver should show up here, not crash `info`
                devices = [f"error: {exc}"]
        backends.append({"name": backend.name, "available": missing is None, "why_not": missing, "devices": devices})
    cache = ArtifactCache()
    entries = cache.entries()
    return {
        "yolo_adapters": __version__,
        "python": platform.python_version(),
        "packages": {n: ver(n) for n in ("ultralytics", "torch", "openvino", "onnxruntime", "ais_bench", "wrapt")},
        "backends": backends,
        "cache": {"root": str(cache.root), "entries": len(entries), "bytes": sum(e["size"] for e in entries)},
        "active_backend": activation.active(),
        "patches_installed": patching.is_installed(),
    }


def cmd_info(args: argparse.Namespace) -> int:
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"yolo_adapters {info['yolo_adapters']}  Python {info['python']}")
    for name, value in info["packages"].items():
        print(f"  {name:<12} {value or 'not installed'}")
    print("backends:")
    for b in info["backends"]:
        state = "ready" if b["available"] else f"unavailable: {b['why_not']}"
        devices = f"  devices: {', '.join(b['devices'])}" if b["devices"] else ""
        print(f"  {b['name']:<12} {state}{devices}")
    c = info["cache"]
    print(f"cache: {c['root']} ({c['entries']} entries, {c['bytes'] / 1e6:.1f} MB)")
    print(f"active backend: {info['active_backend'] or 'none'}; patches installed: {info['patches_installed']}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from .cache import ArtifactCache

    cache = ArtifactCache()
    if args.action == "list":
        for entry in cache.entries():
            fields = entry.get("fields", {})
            print(f"{entry['key']}  {entry['size'] / 1e6:7.1f} MB  {fields.get('backend', '?')}  {entry['path']}")
        return 0
    removed = cache.clear()
    print(f"removed {removed} entries from {cache.root}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yolo-adapters", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a script, module or command with a backend active")
    run.add_argument("--backend", "-b", required=True, help="backend name, optionally with a device: openvino:GPU")
    run.add_argument("--device", "-d", help="engine device (same as BACKEND:DEVICE)")
    run.add_argument("--option", "-o", action="append", default=[], help="backend option key=value (repeatable)")
    run.add_argument("-m", dest="module", help="run a module like python -m")
    run.add_argument("args", nargs=argparse.REMAINDER, help="script.py ARGS, or a command such as yolo predict ...")
    run.set_defaults(func=cmd_run)

    conv = sub.add_parser("convert", help="convert a .pt for a backend ahead of time (cached)")
    conv.add_argument("model")
    conv.add_argument("--backend", "-b", required=True)
    conv.add_argument("--device", "-d")
    conv.add_argument("--imgsz", type=int, nargs="+")
    conv.add_argument("--batch", type=int)
    conv.add_argument("--precision", choices=["fp32", "fp16"])
    conv.add_argument("--dynamic", action=argparse.BooleanOptionalAction, default=None)
    conv.add_argument("--option", "-o", action="append", default=[])
    conv.set_defaults(func=cmd_convert)

    info = sub.add_parser("info", help="versions, backends, devices, cache")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)

    cache = sub.add_parser("cache", help="list or clear converted models")
    cache.add_argument("action", choices=["list", "clear"])
    cache.set_defaults(func=cmd_cache)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AdapterError as exc:
        print(f"yolo-adapters: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
