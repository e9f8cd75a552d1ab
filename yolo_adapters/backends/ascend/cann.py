"""The machine: which CANN tools are here (``npu-smi``, ``atc``), how many NPUs, which SoC, which ATC flags.

Every probe runs a CANN tool and parses its text; when the tool is absent or fails it returns None and the
caller falls back or explains (see docs/ascend.md, "The ais_bench and ATC contract").
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SOC_ENV = "YOLO_ADAPTERS_SOC"
CANN_ENV = ("ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME", "ASCEND_OPP_PATH")
SET_ENV = "source /usr/local/Ascend/ascend-toolkit/set_env.sh"
INSTALL_HINT = (
    "ais_bench is not installed. It is not on PyPI: on the Atlas host, with CANN installed and "
    f"`{SET_ENV}` sourced, build or download the aclruntime and ais_bench wheels from Huawei's Ascend tools "
    "repository (https://gitee.com/ascend/tools, ais-bench_workload/tool/ais_bench) and "
    "`pip install aclruntime-*.whl ais_bench-*.whl`. See docs/ascend.md. "
    "Without a card, yolo_adapters.testing.emulate_ascend() provides a stand-in for tests."
)
CANN_HINT = (
    "The CANN environment is not set up in this shell (ASCEND_HOME_PATH / ASCEND_TOOLKIT_HOME are unset, "
    f"so ais_bench cannot load libascendcl.so): run `{SET_ENV}` (or your CANN install's set_env.sh) first."
)


def run_tool(argv: list[str], timeout: float = 20.0) -> str | None:
    """stdout of a CANN tool, or None when it is absent or fails (callers fall back or explain)."""
    exe = shutil.which(argv[0])
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def npu_count() -> int | None:
    """How many NPU device ids exist (``npu-smi info -l``: chips summed over cards); None when unknown."""
    text = run_tool(["npu-smi", "info", "-l"])
    if not text:
        return None
    chips = [int(m) for m in re.findall(r"Chip Count\s*:\s*(\d+)", text)]
    if chips:
        return sum(chips)
    total = re.search(r"Total Count\s*:\s*(\d+)", text)
    return int(total.group(1)) if total else None


def detect_soc() -> str | None:
    """The ``--soc_version`` of the first NPU from ``npu-smi info`` (chip "310P3" -> "Ascend310P3")."""
    text = run_tool(["npu-smi", "info"])
    if not text:
        return None
    match = re.search(r"^\|\s*\d+\s+((?:310|910)[0-9A-Za-z_]*)\s", text, re.MULTILINE)
    return f"Ascend{match.group(1)}" if match else None


def resolve_soc(options: Mapping[str, Any]) -> str | None:
    """SoC to compile for: option ``soc_version``, else env YOLO_ADAPTERS_SOC, else what npu-smi reports."""
    return options.get("soc_version") or os.environ.get(SOC_ENV) or detect_soc()


def cann_env_set() -> bool:
    return any(os.environ.get(k) for k in CANN_ENV)


def cann_version() -> str:
    """First line of the toolkit's version.info / version.cfg ("" when unknown): part of the cache key."""
    home = os.environ.get("ASCEND_TOOLKIT_HOME") or os.environ.get("ASCEND_HOME_PATH")
    for name in ("version.info", "version.cfg"):
        if home and (Path(home) / name).is_file():
            lines = (Path(home) / name).read_text().strip().splitlines()
            return lines[0] if lines else ""
    return ""


def atc_has_precision_mode_v2() -> bool | None:
    """Whether this machine's ``atc`` takes ``--precision_mode_v2`` (newer CANN versions), read from
    ``atc --help``; None when atc is not on PATH. Cached per atc binary (path and modification time)."""
    exe = shutil.which("atc")
    if exe is None:
        return None
    try:
        stamp = os.stat(exe).st_mtime_ns
    except OSError:
        stamp = 0
    return _help_lists(exe, stamp, "--precision_mode_v2")


@functools.lru_cache(maxsize=8)
def _help_lists(exe: str, stamp: int, flag: str) -> bool:
    try:  # atc --help exits non-zero on some CANN versions: read the text whatever the exit status
        done = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return re.search(rf"{re.escape(flag)}\b", done.stdout + done.stderr) is not None
