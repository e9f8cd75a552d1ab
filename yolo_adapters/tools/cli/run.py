"""``yolo-adapters run``: an unchanged script, module or command with a backend active."""

from __future__ import annotations

import argparse
import os
import runpy
import shutil
import sys
from pathlib import Path
from typing import Any

from yolo_adapters.core.settings import BACKEND_ENV, split_spec
from yolo_adapters.errors import OptionError
from yolo_adapters.tools.cli._options import add_option_arguments, parse_options


def add_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="run a script, module or command with a backend active")
    run.add_argument("--backend", "-b", required=True, help="backend name, optionally with a device: openvino:GPU")
    run.add_argument("--device", "-d", help="engine device (same as BACKEND:DEVICE)")
    add_option_arguments(run)
    run.add_argument("-m", dest="module", help="run a module like python -m")
    run.add_argument("args", nargs=argparse.REMAINDER, help="script.py ARGS, or a command such as yolo predict ...")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    """Activate in this process, then run the target as ``__main__`` (child processes inherit YOLO_ADAPTERS)."""
    from yolo_adapters.integration.activation import activate

    backend, device = split_spec(args.backend)
    options: dict[str, Any] = {"device": device} if device else {}
    if args.device:
        options["device"] = args.device
    options.update(parse_options(args.option))
    os.environ[BACKEND_ENV] = backend + (f":{options['device']}" if options.get("device") else "")
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
