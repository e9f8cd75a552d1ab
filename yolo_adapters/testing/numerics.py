"""The arithmetic of an ATC precision mode, modelled on an ONNX graph so that ONNX Runtime computes what a card would.

The stand-in ``atc`` rewrites the ONNX model it stores in the emulated .om:

- **Matrix ops** (Conv, ConvTranspose, MatMul, Gemm) run on the cube units. Where the mode gives them FP16
  inputs, their weights are rounded to float16 (and back: the stored graph stays FP32) and their activation
  inputs pass through ``Cast(FLOAT16) -> Cast(FLOAT)``. ONNX Runtime then multiplies the rounded values and
  accumulates in FP32, as cube units do (a product of two float16 values is exact in FP32). Where the mode
  gives them FP16 results, the result is rounded the same way; their bias is then rounded too.
- **Other ops** (vector units: activations, elementwise, resize, concat, softmax...) keep FP32, or, where the
  mode computes them in FP16, every float32 tensor they produce is rounded to float16.

What it cannot model: which kernel ATC picks and its own rounding (a real FP16 kernel may be off by an ulp
more than a correctly rounded result), the accumulation order inside a kernel, FP16 accumulation inside
vector reductions, operator fusions, and AI CPU fallbacks for ops without an AI Core kernel. Those are why
a real card can differ from the emulation by a little more than these models do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MATRIX_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})

#: mode -> (matrix inputs, matrix results, other ops); both flags' spellings.
_MODES = {
    "force_fp16": ("fp16", "fp16", "fp16"),
    "fp16": ("fp16", "fp16", "fp16"),
    "allow_fp32_to_fp16": ("fp16", "fp16", "fp32"),
    # mixed precision: ATC lowers the ops of its built-in list (matrix ops among them) to FP16; modelled as
    # allow_fp32_to_fp16 (the list itself, per SoC and CANN version, is not modelled).
    "allow_mix_precision": ("fp16", "fp16", "fp32"),
    "allow_mix_precision_fp16": ("fp16", "fp16", "fp32"),
    "mixed_float16": ("fp16", "fp16", "fp32"),
    "force_fp32": ("fp16", "fp32", "fp32"),
    "cube_fp16in_fp32out": ("fp16", "fp32", "fp32"),
    "must_keep_origin_dtype": ("fp32", "fp32", "fp32"),
    "origin": ("fp32", "fp32", "fp32"),
}
_NOT_MODELLED = ("allow_fp32_to_bf16", "allow_mix_precision_bf16", "mixed_bfloat16", "mixed_hif8", "cube_hif8")


class ModeError(ValueError):
    """The mode cannot be compiled for this SoC, or is not one the emulation models."""


@dataclass(frozen=True)
class Arithmetic:
    matrix_inputs: str  # "fp16" | "fp32"
    matrix_outputs: str
    other_ops: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def fp32_cube(soc: str) -> bool:
    """Ascend910B / 910_93 cube units multiply FP32; the 310 series and the first 910 generation do not."""
    return soc.startswith("Ascend910B") or soc.startswith("Ascend910_93")


def arithmetic_for(mode: str, soc: str, has_matrix_ops: bool = True) -> Arithmetic:
    """The arithmetic ``mode`` implies on ``soc`` ("" = no flag given: ATC's default, force_fp16)."""
    mode = mode or "force_fp16"
    if mode in _NOT_MODELLED:
        raise ModeError(f"precision mode {mode} is a real ATC mode the emulation does not model (bfloat16/hif8)")
    if mode not in _MODES:
        raise ModeError(f"E10001: value {mode!r} of the precision mode is not supported")
    arithmetic = Arithmetic(*_MODES[mode])
    if arithmetic.matrix_inputs == "fp32" and has_matrix_ops and not fp32_cube(soc):
        raise ModeError(
            f"E16005: op Conv2D/MatMul has no float32 implementation on {soc} (its cube units compute float16): "
            f"precision mode {mode} cannot keep the model's float32; use force_fp32/cube_fp16in_fp32out"
        )
    return arithmetic


def has_matrix_ops(model) -> bool:
    return any(node.op_type in MATRIX_OPS for node in model.graph.node)


def apply(model, arithmetic: Arithmetic):
    """A copy of ``model`` (onnx.ModelProto) whose FP32 arithmetic rounds where ``arithmetic`` says."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if arithmetic == Arithmetic("fp32", "fp32", "fp32"):
        return model
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    float_tensors = {
        v.name
        for v in [*graph.value_info, *graph.input, *graph.output]
        if v.type.tensor_type.elem_type == TensorProto.FLOAT
    }
    initializers = {init.name: init for init in graph.initializer}
    float_tensors |= {name for name, init in initializers.items() if init.data_type == TensorProto.FLOAT}

    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    rounded: dict[str, str] = {}  # tensor -> its float16-rounded copy
    new_inits = []
    counter = [0]

    def fresh(base: str) -> str:
        counter[0] += 1
        return f"{base}__emu{counter[0]}"

    def cast_pair(source: str, target: str) -> list:
        half = fresh(source + "_fp16")
        return [
            helper.make_node("Cast", [source], [half], to=TensorProto.FLOAT16, name=fresh("emu_to_fp16")),
            helper.make_node("Cast", [half], [target], to=TensorProto.FLOAT, name=fresh("emu_to_fp32")),
        ]

    def rounded_input(name: str, nodes: list) -> str:
        if not name or name not in float_tensors:
            return name
        if name not in rounded:
            if name in initializers:
                array = numpy_helper.to_array(initializers[name]).astype(np.float16).astype(np.float32)
                rounded[name] = fresh(name)
                new_inits.append(numpy_helper.from_array(array, rounded[name]))
            else:
                rounded[name] = fresh(name)
                nodes.extend(cast_pair(name, rounded[name]))
        return rounded[name]

    for node in model.graph.node:
        before: list[Any] = []
        after: list[Any] = []
        new = onnx.NodeProto()
        new.CopyFrom(node)
        matrix = node.op_type in MATRIX_OPS
        if matrix and arithmetic.matrix_inputs == "fp16":
            rounded_slots = (0, 1, 2) if arithmetic.matrix_outputs == "fp16" else (0, 1)
            for slot in rounded_slots:
                if slot < len(new.input):
                    new.input[slot] = rounded_input(new.input[slot], before)
        round_outputs = arithmetic.matrix_outputs == "fp16" if matrix else arithmetic.other_ops == "fp16"
        if round_outputs and node.op_type != "Cast":
            for i, name in enumerate(node.output):
                if name in float_tensors:
                    exact = fresh(name + "_fp32")
                    new.output[i] = exact
                    after.extend(cast_pair(exact, name))
        out.graph.node.extend([*before, new, *after])
    out.graph.initializer.extend(new_inits)
    return out
