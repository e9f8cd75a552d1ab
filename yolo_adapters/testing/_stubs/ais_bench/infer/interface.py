"""Stand-in for ``ais_bench.infer.interface``: ``InferSession`` over ONNX Runtime, for machines without a card.

It enforces the contract written down in docs/ascend.md ("The ais_bench and ATC contract") and nothing else:
the same argument checks, the same refusal to convert dtypes (bytes are reinterpreted, as a real card would),
float16 outputs for an .om built with ``--output_type=FP16``, dynamic-batch gears, ``summary``/``sumary`` by
API generation, and ``free_resource``. It only opens the emulated .om files written by the stand-in ``atc``,
whose ONNX graph already computes with the arithmetic of the .om's precision mode
(yolo_adapters.testing.numerics). Every call is recorded in the active emulation (device ids, feeds,
overlapping calls on one session).
"""

from __future__ import annotations

import enum
import os
import re
import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from yolo_adapters.testing import _state
from yolo_adapters.testing.om_format import read_om

_EMULATION = _state.active()
if _EMULATION is None:
    raise ImportError(
        "This ais_bench is yolo_adapters' stand-in and works only inside yolo_adapters.testing.emulate_ascend()."
    )

_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")
_MODES = ("static", "dymbatch", "dymhw", "dymdims", "dymshape")


class dtype(enum.Enum):  # noqa: N801 - aclruntime spells it in lower case
    """Mirror of ``aclruntime.dtype``."""

    uint8 = 4
    int8 = 2
    uint16 = 7
    int16 = 6
    uint32 = 8
    int32 = 3
    uint64 = 10
    int64 = 9
    float16 = 1
    float32 = 0
    float64 = 11
    bool = 12


_FROM_NUMPY = {np.dtype(getattr(np, "bool_" if d.name == "bool" else d.name)): d for d in dtype}


class tensor_desc:  # noqa: N801 - aclruntime spells it in lower case
    """Mirror of ``aclruntime.tensor_desc``."""

    def __init__(self, name: str, datatype: dtype, shape: list[int], size: int, realsize: int) -> None:
        self.name, self.datatype, self.format = name, datatype, 0  # 0 = NCHW
        self.shape, self.size, self.realsize = list(shape), int(size), int(realsize)

    def __repr__(self) -> str:
        return f"tensor_desc(name={self.name!r}, datatype={self.datatype}, shape={self.shape}, size={self.size}, realsize={self.realsize})"


def _as_host_array(feed: Any) -> np.ndarray:
    if type(feed) is np.ndarray:
        return feed if feed.flags.c_contiguous else np.ascontiguousarray(feed)
    if hasattr(feed, "type") and hasattr(feed, "numpy") and str(feed.type()).startswith("torch."):
        if getattr(feed, "device", None) is not None and str(feed.device) != "cpu":
            raise RuntimeError(f"type:{type(feed)} invalid (only CPU torch tensors)")
        return np.ascontiguousarray(feed.numpy())
    raise RuntimeError(f"type:{type(feed)} invalid")


class _Session:
    """Shared body of both API generations."""

    def __init__(self, device_id: int, model_path: str, acl_json_path: str | None = None, debug: bool = False, loop: int = 1) -> None:
        if not isinstance(model_path, str):
            raise TypeError(f"model_path must be str, got {type(model_path).__name__}")
        if not _SAFE_PATH.match(model_path):
            raise ValueError(f"model_path {model_path!r} contains characters outside [A-Za-z0-9_./-]")
        if not model_path.endswith(".om"):
            raise ValueError(f"model_path {model_path!r} is not an .om file")
        if not os.path.isfile(model_path):
            raise ValueError(f"model_path {model_path!r} is not a regular file")
        if isinstance(device_id, bool) or not isinstance(device_id, int):
            raise TypeError(f"device_id must be int, got {type(device_id).__name__}")
        if not 0 <= device_id <= 255:
            raise ValueError(f"device_id {device_id} is out of range 0..255")
        emu = _EMULATION
        if device_id >= emu.cards:
            raise RuntimeError(f"aclrtSetDevice failed: device {device_id} does not exist ({emu.cards} emulated)")
        try:
            header, onnx_bytes = read_om(model_path)
        except (ValueError, OSError) as exc:
            raise RuntimeError(f"load model from file failed: {exc}") from exc
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self._ort = onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.device_id, self.model_path, self.loop = device_id, model_path, loop
        self._header = header
        ort_input = self._ort.get_inputs()[0]
        self._in_dtype = np.dtype({"tensor(float)": np.float32, "tensor(float16)": np.float16}.get(ort_input.type, np.float32))
        self._gear = max(header.dynamic_batch_sizes) if header.dynamic_batch_sizes else int(header.input_shape[0])
        self._times: list[float] = []
        self._active = 0
        self._freed = False
        self.uid = emu.record("init", session=None, device_id=device_id, model_path=model_path,
                              api=emu.api, output_type=header.output_type, input_shape=list(header.input_shape))

    # -- description ------------------------------------------------------------------------------------
    def _sample_bytes(self) -> int:
        return int(np.prod(self._header.input_shape[1:])) * self._in_dtype.itemsize

    def get_inputs(self) -> list[tensor_desc]:
        size = self._sample_bytes() * (max(self._header.dynamic_batch_sizes or [self._header.input_shape[0]]))
        realsize = self._sample_bytes() * self._gear
        return [tensor_desc(self._header.input_name, _FROM_NUMPY[self._in_dtype], self._header.input_shape, size, realsize)]

    def get_outputs(self) -> list[tensor_desc]:
        out_dtype = np.dtype(np.float16) if self._header.output_type == "FP16" else np.dtype(np.float32)
        descs = []
        for o in self._ort.get_outputs():
            shape = [d if isinstance(d, int) else -1 for d in o.shape]
            if shape and self._header.dynamic_batch_sizes:
                shape[0] = -1
            n = int(np.prod(shape)) * out_dtype.itemsize if all(d >= 0 for d in shape) else 0
            descs.append(tensor_desc(o.name, _FROM_NUMPY[out_dtype], shape, n, n))
        return descs

    def get_max_dym_batchsize(self) -> int:
        if not self._header.dynamic_batch_sizes:
            raise RuntimeError("not a dymbatch model!")
        return max(self._header.dynamic_batch_sizes)

    # -- inference ---------------------------------------------------------------------------------------
    def infer(self, feeds: Any, mode: str = "static", custom_sizes: Any = 100000, out_array: bool = True) -> list[np.ndarray]:
        if not isinstance(feeds, list):
            raise ValueError(f"feeds must be a list, got {type(feeds).__name__}")
        if self._freed:
            raise RuntimeError("session resources were freed (free_resource was called)")
        if mode not in _MODES:
            raise RuntimeError(f"wrong infer_mode:{mode}, only support {', '.join(_MODES)}")
        if not out_array:
            raise NotImplementedError("the emulation returns host arrays only (out_array=True)")
        arrays = [_as_host_array(f) for f in feeds]
        if len(arrays) != 1:
            raise RuntimeError("input datas and intensors nums not matched!")
        header = self._header
        dynamic = bool(header.dynamic_batch_sizes)
        if mode == "static":
            if dynamic:
                raise RuntimeError("dynamic batch model: infer with mode='dymbatch'")
            gear = int(header.input_shape[0])
        elif mode == "dymbatch":
            if not dynamic:
                raise RuntimeError("not a dymbatch model!")
            gear = int(arrays[0].shape[0]) if arrays[0].ndim else 0
            if gear not in header.dynamic_batch_sizes:
                raise RuntimeError(f"set dynamic batch size {gear} failed: the model's gears are {header.dynamic_batch_sizes}")
        else:
            raise RuntimeError(f"not a {mode} model! (the emulated .om supports static and dymbatch)")
        self._gear = gear
        realsize = self._sample_bytes() * gear
        if arrays[0].nbytes != realsize:
            raise RuntimeError(f"input size {arrays[0].nbytes} does not match the model's input realsize {realsize}")
        # No dtype conversion, exactly like a card: the bytes are read as the model's input type.
        data = np.frombuffer(arrays[0].tobytes(), dtype=self._in_dtype).reshape([gear, *header.input_shape[1:]])
        emu = _EMULATION
        with emu.lock:
            self._active += 1
            overlapped = self._active > 1
            if overlapped:
                emu.overlaps += 1
        try:
            start = time.perf_counter()
            if emu.infer_delay:
                time.sleep(emu.infer_delay)
            outputs = self._ort.run(None, {header.input_name: data})
            if header.output_type == "FP16":
                outputs = [o.astype(np.float16) for o in outputs]
            self._times.append((time.perf_counter() - start) * 1000)
        finally:
            with emu.lock:
                self._active -= 1
        emu.record("infer", session=self.uid, device_id=self.device_id, mode=mode, overlapped=overlapped,
                   container=type(feeds).__name__, feeds=[{"type": type(f).__name__, "dtype": str(a.dtype),
                   "shape": list(a.shape), "nbytes": int(a.nbytes), "c_contiguous": bool(getattr(f, "flags", a.flags).c_contiguous)}
                   for f, a in zip(feeds, arrays)], thread=threading.get_ident())
        return outputs

    def infer_pipeline(self, feeds_list: list, mode: str = "static", custom_sizes: Any = 100000) -> list[list[np.ndarray]]:
        return [self.infer(feeds, mode, custom_sizes) for feeds in feeds_list]

    def _summary(self) -> SimpleNamespace:
        return SimpleNamespace(exec_time_list=list(self._times))


class _CurrentSession(_Session):
    """2024-2025 builds: ``summary()`` and ``free_resource()``."""

    def summary(self) -> SimpleNamespace:
        return self._summary()

    def free_resource(self) -> None:
        self._freed = True
        _EMULATION.record("free", session=self.uid, device_id=self.device_id)


class _OlderSession(_Session):
    """Older builds: only ``sumary()`` (sic), no ``free_resource``."""

    def sumary(self) -> SimpleNamespace:
        return self._summary()


InferSession = _CurrentSession if _EMULATION.api == "current" else _OlderSession
InferSession.__name__ = InferSession.__qualname__ = "InferSession"
