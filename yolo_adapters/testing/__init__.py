"""Ascend emulation for people without a card: a stand-in ais_bench, ``atc`` and ``npu-smi``.

    from yolo_adapters.testing import emulate_ascend

    with emulate_ascend(tmp_path, cards=2) as emu:
        YOLO("yolo11n.pt").predict("bus.jpg", device="ascend:0,1")
        emu.device_ids()      # [0, 1]: one InferSession per card, device ids passed as int

What it proves: that the code path (conversion command line, .om loading, the InferSession contract written
down in docs/ascend.md, "The ais_bench and ATC contract", device ids, batching, locking, teardown) is right,
and what the precision modes do to the results. The "model" inside an emulated .om is the ONNX file,
rewritten by the stand-in atc so that ONNX Runtime on the CPU computes with the arithmetic the ATC precision
mode implies on the chosen SoC (``numerics``: FP16 rounding of matrix-op inputs and weights with FP32
accumulation, FP16 or FP32 elsewhere; FP16 outputs with ``--output_type=FP16``). What it cannot tell you:
speed, which operators a real ATC/CANN version supports, which kernels it picks and their own rounding,
accumulation order, fusions and AI CPU fallbacks (see ``numerics`` and docs/ascend.md).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from yolo_adapters.testing import _state

STUBS = Path(__file__).parent / "_stubs"
_STUB_MODULES = ("ais_bench", "aclruntime")
_ENV = ("PATH", "ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME", "ASCEND_OPP_PATH", "YOLO_ADAPTERS_EMULATION_DIR")


class AscendEmulation:
    """What the emulated Ascend stack saw: sessions, inferences, frees, overlaps, atc and npu-smi calls."""

    def __init__(
        self, root: Path, cards: int = 1, chip: str = "310P3", api: str = "current", infer_delay: float = 0.0
    ) -> None:
        if api not in ("current", "older"):
            raise ValueError("api must be 'current' (summary + free_resource) or 'older' (sumary only)")
        self.root, self.cards, self.chip, self.api, self.infer_delay = (
            Path(root),
            int(cards),
            chip,
            api,
            float(infer_delay),
        )
        self.lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.overlaps = 0  # infer calls that entered a session while another call was inside it
        self._uid = 0

    def record(self, kind: str, **fields: Any) -> int:
        with self.lock:
            self._uid += 1
            self.events.append({"event": kind, "uid": self._uid, **fields})
            return self._uid

    # -- queries for tests ----------------------------------------------------------------------------
    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["event"] == kind]

    def device_ids(self) -> list[Any]:
        """device_id of every InferSession created, as passed (tests check it is an int)."""
        return [e["device_id"] for e in self.of("init")]

    def infer_devices(self) -> list[int]:
        return [e["device_id"] for e in self.of("infer")]

    def freed_sessions(self) -> list[int]:
        return [e["session"] for e in self.of("free")]

    def atc_calls(self) -> list[dict[str, Any]]:
        return _read_jsonl(self.root / "atc_calls.jsonl")

    def npu_smi_calls(self) -> list[dict[str, Any]]:
        return _read_jsonl(self.root / "npu_smi_calls.jsonl")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_tool(folder: Path, name: str, module: str) -> None:
    script = folder / name
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
    script.chmod(0o755)


def _forget_stub_modules() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in _STUB_MODULES:
            del sys.modules[name]


@contextmanager
def emulate_ascend(
    tmp_path: str | os.PathLike,
    cards: int = 1,
    chip: str = "310P3",
    api: str = "current",
    atc: bool = True,
    npu_smi: bool = True,
    cann_env: bool = True,
    infer_delay: float = 0.0,
    precision_mode_v2: bool = True,
) -> Iterator[AscendEmulation]:
    """Install the stand-ins for the duration of the block; everything is restored afterwards.

    ``cards``: NPUs seen by npu-smi and InferSession. ``api``: "current" or "older" ais_bench generation.
    ``atc`` / ``npu_smi`` / ``cann_env``: leave one out to test the errors when it is missing.
    ``infer_delay``: seconds each inference sleeps, so tests can catch unserialised concurrent calls.
    ``precision_mode_v2``: whether the emulated CANN is new enough to have the flag (``atc --help`` lists it).
    """
    root = Path(tmp_path) / "ascend_emulation"
    bin_dir, toolkit = root / "bin", root / "ascend-toolkit"
    bin_dir.mkdir(parents=True, exist_ok=True)
    toolkit.mkdir(parents=True, exist_ok=True)
    (toolkit / "version.info").write_text("Version=emulated\n")
    (root / "config.json").write_text(
        json.dumps({"cards": cards, "chip": chip, "precision_mode_v2": precision_mode_v2})
    )
    for stale in ("atc", "npu-smi"):
        (bin_dir / stale).unlink(missing_ok=True)
    if atc:
        _write_tool(bin_dir, "atc", "yolo_adapters.testing.atc")
    if npu_smi:
        _write_tool(bin_dir, "npu-smi", "yolo_adapters.testing.npu_smi")

    emulation = AscendEmulation(root, cards=cards, chip=chip, api=api, infer_delay=infer_delay)
    saved_env = {k: os.environ.get(k) for k in _ENV}
    _state.activate(emulation)
    try:
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        os.environ["YOLO_ADAPTERS_EMULATION_DIR"] = str(root)
        if cann_env:
            os.environ["ASCEND_HOME_PATH"] = os.environ["ASCEND_TOOLKIT_HOME"] = str(toolkit)
        else:
            for key in ("ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME", "ASCEND_OPP_PATH"):
                os.environ.pop(key, None)
        _forget_stub_modules()
        sys.path.insert(0, str(STUBS))
        importlib.invalidate_caches()
        yield emulation
    finally:
        try:
            sys.path.remove(str(STUBS))
        except ValueError:
            pass
        _forget_stub_modules()
        importlib.invalidate_caches()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _state.deactivate(emulation)


__all__ = ["STUBS", "AscendEmulation", "emulate_ascend"]
