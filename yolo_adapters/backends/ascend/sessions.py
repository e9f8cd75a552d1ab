"""The session pool: one ais_bench ``InferSession`` per (model file, NPU), shared by every engine in the process.

ais_bench has no internal lock, so each shared session carries the lock that serialises it; the last engine
that releases a session calls its ``free_resource()`` (absent in older ais_bench builds).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yolo_adapters.errors import DeviceError, ModelFormatError

LOGGER = logging.getLogger(__name__)

# ACL type names as ``aclruntime.dtype`` spells them, and their numeric codes (aclDataType).
_DTYPES = {
    "float32": np.float32,
    "float": np.float32,
    "float16": np.float16,
    "half": np.float16,
    "float64": np.float64,
    "double": np.float64,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "bool": np.bool_,
}
_ACL_CODES = {
    0: np.float32,
    1: np.float16,
    2: np.int8,
    3: np.int32,
    4: np.uint8,
    6: np.int16,
    7: np.uint16,
    8: np.uint32,
    9: np.int64,
    10: np.uint64,
    11: np.float64,
    12: np.bool_,
}


def dtype_of(desc: Any) -> np.dtype | None:
    """numpy dtype of an aclruntime tensor_desc (enum member, name string or aclDataType code)."""
    datatype = getattr(desc, "datatype", None)
    if isinstance(datatype, (np.dtype, type)) and datatype is not None:
        try:
            return np.dtype(datatype)
        except TypeError:
            pass
    name = getattr(datatype, "name", None) or str(datatype)
    key = name.split(".")[-1].lower().replace("acl_", "")
    if key in _DTYPES:
        return np.dtype(_DTYPES[key])
    code = getattr(datatype, "value", datatype)
    return np.dtype(_ACL_CODES[code]) if isinstance(code, int) and code in _ACL_CODES else None


@dataclass(eq=False)
class SharedSession:
    """An InferSession with the lock that serialises it (ais_bench has no internal lock)."""

    session: Any
    device_id: int
    key: tuple
    lock: threading.Lock = field(default_factory=threading.Lock)
    refs: int = 0


_sessions_lock = threading.Lock()
_sessions: dict[tuple, SharedSession] = {}


def acquire(session_cls: Any, om: Path, device_id: int) -> SharedSession:
    """The process's session for ``om`` on NPU ``device_id``, created on first use."""
    stat = om.stat()
    key = (id(session_cls), str(om), stat.st_mtime_ns, stat.st_size, device_id)
    with _sessions_lock:
        shared = _sessions.get(key)
        if shared is None:
            try:
                session = session_cls(device_id=device_id, model_path=str(om))
            except (ValueError, TypeError) as exc:
                raise ModelFormatError(f"ais_bench refused {om} for NPU {device_id}: {exc}") from exc
            except RuntimeError as exc:
                raise DeviceError(
                    f"ais_bench could not load {om} on NPU {device_id}: {exc}. Check `npu-smi info` (is NPU "
                    f"{device_id} present and free?) and that the .om was compiled for this SoC."
                ) from exc
            shared = _sessions[key] = SharedSession(session, device_id, key)
        shared.refs += 1
        return shared


def release(shared: SharedSession) -> None:
    with _sessions_lock:
        shared.refs -= 1
        if shared.refs > 0:
            return
        _sessions.pop(shared.key, None)
    free = getattr(shared.session, "free_resource", None)  # absent in older ais_bench builds
    if callable(free):
        with shared.lock:
            try:
                free()
            except Exception as exc:  # teardown must not raise (it may run from a finalizer)
                LOGGER.warning("ais_bench free_resource failed on NPU %s: %s", shared.device_id, exc)


def release_all(handles: list[SharedSession]) -> None:
    while handles:
        release(handles.pop())
