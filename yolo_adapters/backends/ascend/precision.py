"""Which ATC precision mode a model is compiled with, what a card then computes, and the parity it reaches.

ATC's own default for inference is ``force_fp16``: an .om built without a precision flag computes in FP16
whatever the ONNX says. So every atc run here states its mode (docs/ascend.md, "Precision"):

=================  ===========================================  ============================================
``precision``      Ascend910B / 910_93 (cube units take FP32)   every other SoC (310, 310P, 310B, 910A...)
=================  ===========================================  ============================================
``"fp32"``         ``must_keep_origin_dtype`` (v2 ``origin``):   ``force_fp32`` (v2 ``cube_fp16in_fp32out``):
                   FP32 throughout                              matrix ops take FP16 inputs and weights and
                                                                accumulate and output FP32; the rest FP32
``"fp16"``         ``force_fp16`` (v2 ``fp16``)                 ``force_fp16`` (v2 ``fp16``)
=================  ===========================================  ============================================

The cube units of 310-series and first-generation 910 chips multiply FP16 (and INT8) only, so FP32 is not
available there for Conv/MatMul at all: ``must_keep_origin_dtype`` would fall back to AI CPU kernels or fail.
``--precision_mode_v2`` is used when ``atc --help`` lists it (newer CANN; documented from 6.3.RC2 on), ``--precision_mode``
otherwise; both spell the same modes. ``precision_mode`` / ``precision_mode_v2`` options pass any mode through.
"""

from __future__ import annotations

from dataclasses import dataclass

from yolo_adapters.compare.parity import DEFAULT_TOLERANCES, Tolerances

V1, V2 = "precision_mode", "precision_mode_v2"

#: What each mode makes of an FP32 graph, by kind (both flags' spellings).
KIND = {
    "force_fp16": "fp16",
    "fp16": "fp16",
    "allow_fp32_to_fp16": "matrix_fp16",
    "allow_mix_precision": "matrix_fp16",
    "allow_mix_precision_fp16": "matrix_fp16",
    "mixed_float16": "matrix_fp16",
    "force_fp32": "cube_fp16in_fp32out",
    "cube_fp16in_fp32out": "cube_fp16in_fp32out",
    "must_keep_origin_dtype": "origin",
    "origin": "origin",
    "allow_fp32_to_bf16": "bf16",
    "allow_mix_precision_bf16": "bf16",
    "mixed_bfloat16": "bf16",
}

#: What a card computes under each kind, in words (metadata.yaml, `yolo-adapters info`, docs).
COMPUTES = {
    "fp16": "FP16 throughout (matrix ops: FP16 inputs and weights, FP32 accumulation, FP16 results)",
    "matrix_fp16": "matrix ops in FP16 (FP16 inputs, weights and results, FP32 accumulation); other ops FP32",
    "cube_fp16in_fp32out": "matrix ops: FP16 inputs and weights, FP32 accumulation and results; other ops FP32",
    "origin": "FP32 throughout (needs FP32 cube kernels: Ascend910B / 910_93)",
    "bf16": "bfloat16 in matrix ops (not modelled by the emulation)",
}


def kind_of(mode: str) -> str:
    """ "fp16", "matrix_fp16", "cube_fp16in_fp32out", "origin", "bf16", or "unknown" for a mode not listed."""
    return KIND.get(mode, "unknown")


def fp32_cube(soc: str | None) -> bool:
    """Whether the SoC's cube units multiply FP32 (Atlas A2/A3: Ascend910B*, Ascend910_93*)."""
    return (soc or "").startswith(("Ascend910B", "Ascend910_93"))


def default_mode(precision: str, soc: str | None, v2: bool) -> tuple[str, str]:
    """(flag, mode) for ``precision`` on ``soc``; ``v2``: spell it with --precision_mode_v2."""
    if precision == "fp16":
        return (V2, "fp16") if v2 else (V1, "force_fp16")
    if fp32_cube(soc):
        return (V2, "origin") if v2 else (V1, "must_keep_origin_dtype")
    return (V2, "cube_fp16in_fp32out") if v2 else (V1, "force_fp32")


def contradiction(precision: str | None, mode: str) -> str | None:
    """Why ``precision`` and an explicit ATC ``mode`` cannot both hold (None when they agree)."""
    kind = kind_of(mode)
    if precision == "fp32" and kind == "fp16":
        return f"precision='fp32' asks for FP32 but ATC mode {mode!r} computes everything in FP16"
    if precision == "fp16" and kind in ("cube_fp16in_fp32out", "origin"):
        return f"precision='fp16' asks for FP16 but ATC mode {mode!r} keeps FP32"
    return None


# -- parity: each tolerance sits above the worst value the emulation gives on the test models (the values are in
# docs/ascend.md, "Parity"), so a real regression fails while FP16 rounding does not.
#: FP16 outputs (--output_type=FP16) of an FP32 graph: a score near 1 rounds by float16's step there, and two
#: overlapping anchors can tie so NMS keeps the neighbour (a box IoU just under the shared 0.99).
FP16_OUTPUT_TOLERANCES = Tolerances(score=2e-3, box_iou=0.98)
#: Tolerances per kind of mode. Keypoints and masks keep the shared 1 px / 0.98 except on a detection for which
#: NMS kept a neighbouring anchor (FP16 modes and FP16 outputs): there only its box and score are held.
TOLERANCES_BY_KIND: dict[str, Tolerances] = {
    "origin": DEFAULT_TOLERANCES,
    "cube_fp16in_fp32out": Tolerances(score=2e-3),
    "matrix_fp16": Tolerances(score=2e-3),
    "fp16": Tolerances(score=2e-3, box_iou=0.97),
}


@dataclass(frozen=True)
class Precision:
    """How one .om was (or will be) compiled: the flag, the mode, and the SoC it was compiled for."""

    flag: str  # "precision_mode" | "precision_mode_v2" | "" (unknown: a foreign .om)
    mode: str
    soc: str | None = None

    @property
    def kind(self) -> str:
        return kind_of(self.mode)

    @property
    def computes(self) -> str:
        return COMPUTES.get(self.kind, "as ATC decides for this mode")

    @property
    def argv(self) -> list[str]:
        return [f"--{self.flag}={self.mode}"] if self.flag and self.mode else []

    def label(self) -> str:
        return f"--{self.flag}={self.mode}" if self.flag else self.mode


def tolerances(kind: str, output_type: str = "FP32") -> Tolerances:
    """The parity an .om of this kind of mode reaches against PyTorch (the loosest of mode and output type)."""
    base = TOLERANCES_BY_KIND.get(kind, TOLERANCES_BY_KIND["fp16"])  # unmeasured modes: the FP16 ones
    if output_type.upper() != "FP16":
        return base
    out = FP16_OUTPUT_TOLERANCES
    return Tolerances(
        box_iou=min(base.box_iou, out.box_iou),
        score=max(base.score, out.score),
        keypoint_px=max(base.keypoint_px, out.keypoint_px),
        mask_iou=min(base.mask_iou, out.mask_iou),
        prob=max(base.prob, out.prob),
    )
