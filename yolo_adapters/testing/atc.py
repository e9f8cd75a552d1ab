"""Stand-in for CANN's ``atc`` (ONNX only): writes an emulated .om that the stand-in InferSession runs.

Same command line as the real converter for what yolo_adapters uses::

    atc --framework=5 --model=m.onnx --output=OUT --input_format=NCHW --input_shape=images:1,3,640,640
        --soc_version=Ascend310P3 [--output_type=FP16] [--precision_mode=MODE | --precision_mode_v2=MODE]
        [--input_shape=images:-1,3,640,640 --dynamic_batch_size=1,2,4,8]

Writes ``OUT.om``: the ONNX model, rewritten so that ONNX Runtime computes with the arithmetic the precision
mode implies on that SoC (see numerics: FP16 rounding of matrix-op inputs and weights with FP32 accumulation,
FP16 or FP32 elsewhere), plus a header with the flags (see om_format). As in ATC, no precision flag means
``force_fp16``, the two precision flags cannot be combined, ``--precision_mode_v2`` exists only where the
emulated CANN is new enough (``emulate_ascend(..., precision_mode_v2=False)`` emulates an older one), and a
mode that keeps FP32 in matrix ops does not compile for a SoC whose cube units are FP16-only.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from yolo_adapters.testing import numerics
from yolo_adapters.testing.om_format import OmHeader, write_om

_EMULATED = {
    "framework",
    "model",
    "output",
    "input_format",
    "input_shape",
    "soc_version",
    "output_type",
    "dynamic_batch_size",
    "precision_mode",
    "precision_mode_v2",
    "log",
    "op_select_implmode",
    "optypelist_for_implmode",
    "host_env_os",
    "host_env_cpu",
}
_NOT_EMULATED = {
    "insert_op_conf",
    "input_fp16_nodes",
    "dynamic_image_size",
    "dynamic_dims",
    "out_nodes",
    "mode",
    "weight",
    "is_input_adjust_hw_layout",
    "is_output_adjust_hw_layout",
    "keep_dtype",
    "compression_optimize_conf",
}


class AtcError(Exception):
    pass


def _config() -> dict:
    folder = os.environ.get("YOLO_ADAPTERS_EMULATION_DIR")
    path = Path(folder) / "config.json" if folder else None
    return json.loads(path.read_text()) if path and path.is_file() else {}


def _has_v2() -> bool:
    return bool(_config().get("precision_mode_v2", True))


HELP = """usage: atc <args>  (yolo_adapters emulated atc)
  --framework         Framework type. 5:Onnx
  --model             Model file
  --output            Output file path&name (.om appended)
  --input_format      Format of input data: NCHW
  --input_shape       Shape of input data, e.g. "images:1,3,640,640"
  --dynamic_batch_size  Set dynamic batch size, e.g. "1,2,4,8"
  --soc_version       The soc version
  --output_type       Set net output type: FP32, FP16
  --precision_mode    precision mode: force_fp16 (default), force_fp32/cube_fp16in_fp32out, allow_fp32_to_fp16,
                      must_keep_origin_dtype, allow_mix_precision
"""
HELP_V2 = """  --precision_mode_v2 precision mode: fp16 (default), origin, cube_fp16in_fp32out, mixed_float16
"""


def parse(argv: list[str]) -> dict[str, str]:
    """``--key=value`` (or ``--key value``) pairs; a repeated key is an error, as in ATC."""
    args: dict[str, str] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--"):
            raise AtcError(f"E10001: invalid parameter {token!r}")
        key, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 >= len(argv):
                raise AtcError(f"E10004: parameter --{key} needs a value")
            value, i = argv[i + 1], i + 1
        if key in args:
            raise AtcError(f"E10001: parameter --{key} given twice")
        if key in _NOT_EMULATED:
            raise AtcError(f"--{key} is a real ATC option the emulated atc does not implement")
        if key not in _EMULATED or (key == "precision_mode_v2" and not _has_v2()):
            raise AtcError(f"E10001: invalid parameter --{key}")
        args[key] = value
        i += 1
    return args


def convert(args: dict[str, str]) -> Path:
    for required in ("framework", "model", "output", "soc_version"):
        if required not in args:
            raise AtcError(f"E10004: --{required} is required")
    if args["framework"] != "5":
        raise AtcError("the emulated atc converts ONNX models only (--framework=5)")
    if not args["soc_version"].startswith("Ascend"):
        raise AtcError(f"E10001: --soc_version={args['soc_version']} is not a supported SoC")
    if args.get("input_format", "NCHW") != "NCHW":
        raise AtcError("the emulated atc handles --input_format=NCHW only")
    model = Path(args["model"])
    if not model.is_file():
        raise AtcError(f"E10001: model file {model} does not exist")
    import onnx

    proto = onnx.load(str(model))
    initializers = {init.name for init in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise AtcError("the emulated atc handles single-input models only")
    onnx_shape = [d.dim_value if d.HasField("dim_value") else -1 for d in inputs[0].type.tensor_type.shape.dim]
    name, shape = inputs[0].name, onnx_shape
    if "input_shape" in args:
        name, _, dims = args["input_shape"].rpartition(":")
        if name != inputs[0].name:
            raise AtcError(f"E10016: input {name!r} in --input_shape is not an input of the model ({inputs[0].name!r})")
        shape = [int(d) for d in dims.split(",")]
        if len(shape) != len(onnx_shape):
            raise AtcError(f"E10001: --input_shape rank {len(shape)} does not match the model's {len(onnx_shape)}")
    gears: list[int] = []
    if "dynamic_batch_size" in args:
        gears = sorted({int(g) for g in args["dynamic_batch_size"].split(",")})
        if shape[0] != -1 or any(d < 0 for d in shape[1:]):
            raise AtcError("E10001: --dynamic_batch_size needs -1 as the batch of --input_shape and no other -1")
        if not gears or gears[0] < 1:
            raise AtcError("E10001: --dynamic_batch_size gears must be positive")
    elif any(d < 0 for d in shape):
        raise AtcError(f"E10001: input shape {shape} is dynamic; give --input_shape or --dynamic_batch_size")
    if "precision_mode" in args and "precision_mode_v2" in args:
        raise AtcError("E10001: --precision_mode and --precision_mode_v2 cannot be used together")
    flag = "precision_mode_v2" if "precision_mode_v2" in args else "precision_mode" if "precision_mode" in args else ""
    mode = args.get(flag, "") if flag else ""
    v1_only = {
        "force_fp16",
        "force_fp32",
        "allow_fp32_to_fp16",
        "must_keep_origin_dtype",
        "allow_mix_precision",
        "allow_mix_precision_fp16",
        "allow_mix_precision_bf16",
        "allow_fp32_to_bf16",
    }
    v2_only = {"fp16", "origin", "mixed_float16", "mixed_bfloat16"}
    if (flag == "precision_mode" and mode in v2_only) or (flag == "precision_mode_v2" and mode in v1_only):
        raise AtcError(f"E10001: value {mode!r} of --{flag} is not supported")
    try:
        arithmetic = numerics.arithmetic_for(mode, args["soc_version"], numerics.has_matrix_ops(proto))
    except numerics.ModeError as exc:
        raise AtcError(str(exc)) from exc
    output_type = args.get("output_type", "FP32").upper()
    if output_type not in ("FP32", "FP16"):
        raise AtcError(f"the emulated atc handles --output_type FP32 and FP16 only, not {output_type}")
    out = Path(args["output"] + ".om")
    out.parent.mkdir(parents=True, exist_ok=True)
    header = OmHeader(
        input_name=name,
        input_shape=shape,
        dynamic_batch_sizes=gears,
        output_type=output_type,
        soc_version=args["soc_version"],
        precision_mode=mode,
        precision_flag=flag,
        arithmetic=arithmetic.as_dict(),
        atc_argv=[f"--{k}={v}" for k, v in args.items()],
    )
    write_om(out, header, numerics.apply(proto, arithmetic).SerializeToString())
    return out


def _log(argv: list[str], rc: int, out: str) -> None:
    folder = os.environ.get("YOLO_ADAPTERS_EMULATION_DIR")
    if folder:
        with open(Path(folder) / "atc_calls.jsonl", "a") as f:
            f.write(json.dumps({"argv": argv, "cwd": os.getcwd(), "rc": rc, "om": out, "time": time.time()}) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["--help"], ["-h"]):
        print(HELP + (HELP_V2 if _has_v2() else ""))
        return 0
    print("ATC start working now, please wait for a moment. (yolo_adapters emulated atc)")
    try:
        out = convert(parse(argv))
    except (AtcError, ValueError, OSError) as exc:
        print(f"ATC run failed: {exc}", file=sys.stderr)
        _log(argv, 1, "")
        return 1
    print("ATC run success, welcome to the next use.")
    _log(argv, 0, str(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
