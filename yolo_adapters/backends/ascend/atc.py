"""The ATC converter: Ultralytics' ONNX export compiled by CANN's ``atc`` into ``model_ascend_model/model.om``.

The command line (docs/ascend.md, "The ais_bench and ATC contract"), the ``metadata.yaml`` written beside the
.om (Ultralytics' metadata plus how atc was asked to build it, precision mode included), and, where no atc
is installed, the message that says what to run on a machine that has one.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from yolo_adapters.backends.ascend.cann import SET_ENV
from yolo_adapters.backends.ascend.precision import Precision
from yolo_adapters.backends.base import ExportPlan
from yolo_adapters.errors import ConversionError

#: Flags set from options; ``atc_args`` may not repeat them.
MANAGED_FLAGS = (
    "--framework",
    "--model",
    "--output",
    "--input_format",
    "--input_shape",
    "--soc_version",
    "--output_type",
    "--dynamic_batch_size",
    "--precision_mode",
    "--precision_mode_v2",
)
SOC_PLACEHOLDER = "<SOC e.g. Ascend310P3: npu-smi info shows the chip>"


def precision_of(settings: Mapping[str, Any]) -> Precision:
    return Precision(
        settings.get("atc_precision_flag", ""),
        settings.get("atc_precision_mode", ""),
        settings.get("atc_soc_version") or None,
    )


def atc_command(onnx_file: Path, output: Path, plan: ExportPlan, settings: Mapping[str, Any]) -> list[str]:
    """The atc command line for ``plan`` (``--output`` without the .om suffix atc appends)."""
    h, w = plan.imgsz
    gears = tuple(settings.get("atc_dynamic_batch_size") or ())
    batch = "-1" if gears else str(plan.batch)
    argv = [
        "atc",
        "--framework=5",
        f"--model={onnx_file}",
        f"--output={output}",
        "--input_format=NCHW",
        f"--input_shape=images:{batch},3,{h},{w}",
        f"--soc_version={settings.get('atc_soc_version') or SOC_PLACEHOLDER}",
    ]
    if gears:
        argv.append(f"--dynamic_batch_size={','.join(str(g) for g in gears)}")
    if settings.get("atc_output_type", "FP32") == "FP16":
        argv.append("--output_type=FP16")
    argv.extend(precision_of(settings).argv)
    argv.extend(settings.get("atc_args") or ())
    return argv


def write_metadata(onnx_file: Path, out_dir: Path, plan: ExportPlan, settings: Mapping[str, Any]) -> None:
    """Ultralytics' metadata (from the ONNX) as metadata.yaml beside the .om, plus how atc was asked to build it."""
    import yaml

    from yolo_adapters.core.model_info import _literal, read_onnx_metadata

    precision = precision_of(settings)
    meta = {k: _literal(v) for k, v in read_onnx_metadata(onnx_file).items()}
    meta["ascend"] = {
        "soc_version": settings.get("atc_soc_version") or None,
        "output_type": settings.get("atc_output_type", "FP32"),
        "dynamic_batch_sizes": list(settings.get("atc_dynamic_batch_size") or ()),
        "input_shape": [-1 if settings.get("atc_dynamic_batch_size") else plan.batch, 3, *plan.imgsz],
        "precision": settings.get("atc_precision") or None,
        "precision_flag": f"--{precision.flag}",
        "precision_mode": precision.mode,
        "computes": precision.computes,
    }
    (out_dir / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))


def compile_onnx(exported: Path, plan: ExportPlan) -> Path:
    """Compile Ultralytics' ONNX export with atc into ``model_ascend_model/model.om`` + metadata.yaml."""
    onnx_file = exported if exported.suffix == ".onnx" else next(iter(sorted(Path(exported).rglob("*.onnx"))), None)
    if onnx_file is None or not onnx_file.is_file():
        raise ConversionError(f"Ultralytics' ONNX export produced no .onnx file in {exported}.")
    settings = dict(plan.extra)
    out_dir = onnx_file.parent / f"{onnx_file.stem}_ascend_model"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_metadata(onnx_file, out_dir, plan, settings)
    atc = shutil.which("atc")
    if atc is None:
        raise ConversionError(manual_conversion_message(onnx_file, out_dir, plan, settings))
    argv = atc_command(onnx_file, out_dir / onnx_file.stem, plan, settings)
    with tempfile.TemporaryDirectory(prefix="yolo_adapters_atc_") as scratch:  # atc litters its cwd
        done = subprocess.run([atc, *argv[1:]], cwd=scratch, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + "\n" + done.stderr).strip().splitlines()[-15:])
        hint = ""
        if precision_of(settings).kind == "origin":
            hint = (
                f"\n{precision_of(settings).label()} keeps FP32 in matrix ops, which only SoCs with FP32 cube "
                "units (Ascend910B) compile; elsewhere use precision='fp32' without precision_mode (docs/ascend.md)."
            )
        raise ConversionError(f"atc failed (exit {done.returncode}) running:\n  {shlex.join(argv)}\n{tail}{hint}")
    found = sorted(out_dir.glob(f"{onnx_file.stem}*.om"))  # some CANN versions append _linux_<arch>
    if not found:
        raise ConversionError(f"atc reported success but wrote no .om into {out_dir}:\n  {shlex.join(argv)}")
    return found[0]


def manual_conversion_message(onnx_file: Path, out_dir: Path, plan: ExportPlan, settings: Mapping[str, Any]) -> str:
    """No atc here: keep the ONNX and metadata outside the (discarded) staging folder and say what to run."""
    staging = onnx_file.parent
    root = staging.parent.parent if staging.parent.name == "artifacts" else Path(tempfile.gettempdir())
    key = staging.name.removeprefix(".staging-").rsplit("-", 1)[0] or "model"
    pending = root / "ascend_pending" / key
    pending.mkdir(parents=True, exist_ok=True)
    shutil.copy2(onnx_file, pending / onnx_file.name)
    shutil.copy2(out_dir / "metadata.yaml", pending / "metadata.yaml")
    argv = atc_command(Path(onnx_file.name), Path(onnx_file.stem), plan, settings)
    command = f"cd {shlex.quote(str(pending))} && {shlex.join(argv)}"
    return (
        "CANN's atc compiler is not on PATH, so the ONNX export cannot be compiled into an .om here. "
        f"The exported model and its metadata are kept in {pending}. On a machine with CANN installed "
        f"(`{SET_ENV}`), in a copy of that folder, run:\n\n  {command}\n\n"
        f"then put the resulting {onnx_file.stem}.om into {pending} (beside metadata.yaml) and pass that .om as the "
        f"model: YOLO('{pending / (onnx_file.stem + '.om')}', task='{_task_of(pending)}')."
    )


def _task_of(folder: Path) -> str:
    from yolo_adapters.core.model_info import read_metadata_yaml

    return str(read_metadata_yaml(folder).get("task", "detect"))


def artifact_precision(om: Path) -> Precision:
    """How ``om`` was compiled, from the metadata.yaml beside it: ours records flag and mode; Ultralytics'
    own ``format="ascend"`` export always compiles with ``--precision_mode=force_fp16`` (its metadata names
    the SoC in ``args.name``); anything else is unknown (mode "")."""
    from yolo_adapters.core.model_info import read_metadata_yaml

    meta = read_metadata_yaml(Path(om).parent)
    ours = meta.get("ascend")
    if isinstance(ours, Mapping) and ours.get("precision_mode"):
        return Precision(
            str(ours.get("precision_flag") or "").lstrip("-"),
            str(ours["precision_mode"]),
            ours.get("soc_version") or None,
        )
    args = meta.get("args")
    if not isinstance(args, Mapping):
        args = {}
    soc = str(args.get("name") or "")
    if soc.startswith("Ascend") or "_Ascend" in Path(om).stem:
        return Precision("precision_mode", "force_fp16", soc or "Ascend" + Path(om).stem.rsplit("_Ascend", 1)[-1])
    return Precision("", "")
