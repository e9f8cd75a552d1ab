"""The emulated ``.om`` file: what the stand-in ``atc`` writes and the stand-in ``InferSession`` reads.

A real ``.om`` is an opaque, SoC-specific binary that only CANN can read. The emulated one is a small
container of our own: a magic line, a JSON header (input name, shape with -1 for a dynamic batch, the
dynamic batch gears, the output type, the SoC, the precision mode, the arithmetic it implies and the ATC flags
it was built with) and the ONNX bytes, rewritten by the stand-in atc to compute with that arithmetic. It
is never mistaken for a real one: the magic is checked, and a real .om fed to the emulator is rejected.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path

MAGIC = b"YOLO_ADAPTERS_EMULATED_OM\n"


@dataclass
class OmHeader:
    input_name: str
    input_shape: list[int]  # -1 at the batch position for a dynamic-batch model
    dynamic_batch_sizes: list[int] = field(default_factory=list)
    output_type: str = "FP32"  # "FP32" or "FP16" (--output_type)
    soc_version: str = ""
    precision_mode: str = ""  # "" when atc was given no precision flag (ATC's default: force_fp16)
    precision_flag: str = ""  # "precision_mode" | "precision_mode_v2" | ""
    arithmetic: dict = field(default_factory=dict)  # what the stored ONNX computes (testing.numerics)
    atc_argv: list[str] = field(default_factory=list)


def write_om(path: Path, header: OmHeader, onnx_bytes: bytes) -> None:
    """Write an emulated .om (header + ONNX model bytes)."""
    blob = json.dumps(asdict(header)).encode()
    Path(path).write_bytes(MAGIC + struct.pack("<I", len(blob)) + blob + onnx_bytes)


def read_om(path: Path) -> tuple[OmHeader, bytes]:
    """Read an emulated .om; ValueError for anything else (a real .om, a truncated file)."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not an emulated .om (a real .om needs a real Ascend card and CANN)")
    offset = len(MAGIC)
    (size,) = struct.unpack_from("<I", data, offset)
    offset += 4
    header = OmHeader(**json.loads(data[offset : offset + size].decode()))
    return header, data[offset + size :]
