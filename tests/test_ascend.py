"""The Ascend backend against the emulated ais_bench / atc / npu-smi (yolo_adapters.testing).

No card here: every test that runs a model asserts that the emulated InferSession really ran it (its
recorded calls), so nothing passes because the Ascend stack was missing. The emulated atc rewrites the model
to compute with the arithmetic of its precision mode (yolo_adapters.testing.numerics), so the parity tests
hold each mode to the tolerances published for it (precision.TOLERANCES_BY_KIND, docs/ascend.md).
"""

from __future__ import annotations

import gc
import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import yolo_adapters
from yolo_adapters.backends.ascend import AscendPlugin, atc_command, detect_soc, npu_count, tolerances
from yolo_adapters.backends.ascend.precision import FP16_OUTPUT_TOLERANCES
from yolo_adapters.compare.parity import DEFAULT_TOLERANCES, compare_results
from yolo_adapters.errors import BackendUnavailableError, ConversionError, DeviceError, ModelFormatError, OptionError
from yolo_adapters.testing import emulate_ascend
from yolo_adapters.testing.om_format import read_om

TASKS = ("detect", "segment", "pose", "obb", "classify")


@pytest.fixture
def emu(tmp_path: Path):
    """Two emulated NPUs (310P3), current ais_bench API."""
    with emulate_ascend(tmp_path, cards=2) as emulation:
        yield emulation


@pytest.fixture
def emu_fp32(tmp_path: Path):
    """Two emulated Ascend910B3 NPUs: precision="fp32" compiles to "origin", FP32 throughout. The compatibility
    matrix (.ci/compat) runs the tests on it: its seeded YOLOv8n models on old Ultralytics releases (about 140
    overlapping detections on bus.jpg) do not keep the FP16 tolerances, whose NMS then picks other boxes."""
    with emulate_ascend(tmp_path, cards=2, chip="910B3") as emulation:
        yield emulation


@pytest.fixture(scope="module")
def references(checkpoints, images):
    """PyTorch results per task, letterboxed square like a static .om (rect=False)."""
    from ultralytics import YOLO

    cache: dict[str, list] = {}

    def get(task: str) -> list:
        if task not in cache:
            cache[task] = YOLO(str(checkpoints[task])).predict(images, rect=False, verbose=False)
        return cache[task]

    return get


def predict(model_path, images, device="ascend:0", task=None, predict_args=None, **options):
    from ultralytics import YOLO

    with yolo_adapters.use("ascend", **options):
        model = YOLO(str(model_path), task=task) if task else YOLO(str(model_path))
        results = model.predict(images, device=device, verbose=False, **(predict_args or {}))
    return model, results


#: precision="fp32" (the default) on the emulated Ascend310P3: --precision_mode_v2=cube_fp16in_fp32out
DEFAULT_MODE_TOL = tolerances("cube_fp16in_fp32out")


def assert_parity(refs, results, tol=DEFAULT_MODE_TOL):
    assert len(refs) == len(results)
    for ref, res in zip(refs, results):
        agreement = compare_results(ref, res, tol=tol)
        assert agreement.passed(tol), agreement.failures(tol)
        if agreement.task != "classify":
            assert agreement.matched > 0, "no detections to compare: the test would prove nothing"


def assert_fp16_parity(task, refs, results, tol):
    """Parity where float16 rounds the head's scores: two overlapping anchors can then tie, and NMS may keep the
    neighbour, whose keypoints / mask coefficients differ (bus.jpg: one person of six, box IoU 0.98). Pose and
    segment must find the same people with the same boxes and scores; their keypoints and masks are held to
    the shared tolerances on average only (docs/ascend.md, "Parity"). A classifier's top-1 may change only
    between classes whose reference probabilities lie within the probability tolerance of each other."""
    if task == "classify":
        for ref, res in zip(refs, results):
            agreement = compare_results(ref, res, tol=tol)
            assert agreement.max_prob_diff <= tol.prob, agreement.as_dict()
            p_ref = ref.probs.data.float().cpu()
            top_ref, top_res = int(p_ref.argmax()), int(res.probs.data.float().cpu().argmax())
            assert abs(float(p_ref[top_ref] - p_ref[top_res])) <= tol.prob, agreement.as_dict()
        return
    if task not in ("pose", "segment"):
        assert_parity(refs, results, tol)
        return
    for ref, res in zip(refs, results):
        agreement = compare_results(ref, res, tol=tol)
        assert agreement.matched == agreement.reference == agreement.candidate > 0 and not agreement.unmatched
        assert agreement.min_box_iou >= tol.box_iou and agreement.max_score_diff <= tol.score, agreement.as_dict()
        if task == "pose":
            assert agreement.mean_keypoint_px <= 2 * tol.keypoint_px, agreement.as_dict()


def engine_of(model):
    return model.predictor.model.engine


# -- parity --------------------------------------------------------------------------------------------------
def _check_static_run(model, emu, images, soc):
    adapter = model.predictor.model
    assert adapter.format == "ascend" and adapter.artifact.suffix == ".om"
    header, _ = read_om(adapter.artifact)
    assert header.input_shape == [1, 3, 640, 640] and header.soc_version == soc
    infers = emu.of("infer")
    assert len(infers) == len(images) and engine_of(model).calls == len(images)
    for event in infers:  # the session contract: a list of C-contiguous float32 arrays of the input's byte size
        assert event["container"] == "list" and event["mode"] == "static"
        feed = event["feeds"][0]
        assert feed["type"] == "ndarray" and feed["dtype"] == "float32" and feed["c_contiguous"]
        assert feed["nbytes"] == 3 * 640 * 640 * 4
    assert (adapter.artifact.parent / "metadata.yaml").is_file()
    return header


def _default_precision_parity(task, emu, checkpoints, images, references, soc):
    """precision="fp32" (the default) on ``soc``: the mode chosen for it, and parity at that mode's tolerances."""
    model, results = predict(checkpoints[task], images)
    precision = engine_of(model).precision
    assert_parity(references(task), results, tolerances(precision.kind))
    header = _check_static_run(model, emu, images, soc)
    assert (header.precision_flag, header.precision_mode) == (precision.flag, precision.mode)
    return precision, header


@pytest.mark.parametrize("task", TASKS)
def test_parity_every_task(task, emu_fp32, checkpoints, images, references):
    """precision="fp32" on a 910B: FP32 throughout, at the shared tolerances."""
    precision, _ = _default_precision_parity(task, emu_fp32, checkpoints, images, references, "Ascend910B3")
    assert precision.label() == "--precision_mode_v2=origin" and tolerances("origin") == DEFAULT_TOLERANCES


@pytest.mark.parametrize("task", TASKS)
def test_fp32_on_310p_matches_pytorch(task, emu, checkpoints, images, references):
    """precision="fp32" on a 310P (the default): FP16 matrix inputs, FP32 accumulation and everything else."""
    precision, header = _default_precision_parity(task, emu, checkpoints, images, references, "Ascend310P3")
    assert precision.label() == "--precision_mode_v2=cube_fp16in_fp32out"
    assert header.arithmetic == {"matrix_inputs": "fp16", "matrix_outputs": "fp32", "other_ops": "fp32"}


@pytest.mark.parametrize("task", TASKS)
def test_fp16_mode_matches_pytorch(task, emu, checkpoints, images, references):
    """precision="fp16": the whole graph in FP16 on the card (--precision_mode_v2=fp16), at its tolerances."""
    model, results = predict(checkpoints[task], images, precision="fp16")
    header, _ = read_om(model.predictor.model.artifact)
    assert (header.precision_flag, header.precision_mode) == ("precision_mode_v2", "fp16")
    assert header.arithmetic == {"matrix_inputs": "fp16", "matrix_outputs": "fp16", "other_ops": "fp16"}
    assert engine_of(model).precision.mode == "fp16"
    assert_fp16_parity(task, references(task), results, tolerances("fp16"))


@pytest.mark.parametrize("task", ["detect", "pose"])
def test_allow_fp32_to_fp16_matches_pytorch(task, emu, checkpoints, images, references):
    model, results = predict(checkpoints[task], images, precision_mode="allow_fp32_to_fp16")
    assert len(emu.of("infer")) == len(images)
    assert engine_of(model).precision.kind == "matrix_fp16"
    assert_parity(references(task), results, tolerances("matrix_fp16"))


@pytest.mark.parametrize("task", ["detect", "pose", "segment"])
def test_fp16_outputs(task, emu, checkpoints, images, references):
    model, results = predict(checkpoints[task], images, output_type="FP16")
    engine = engine_of(model)
    header, _ = read_om(model.predictor.model.artifact)
    assert header.output_type == "FP16"
    assert "--output_type=FP16" in emu.atc_calls()[-1]["argv"]
    raw = engine.infer(np.zeros(engine.input_shape, np.float32))
    assert all(o.dtype == np.float16 for o in raw), "the FP16 .om must hand back float16 (the runtime casts)"
    tol = tolerances("cube_fp16in_fp32out", "FP16")
    assert tol.score >= FP16_OUTPUT_TOLERANCES.score and tol.box_iou <= FP16_OUTPUT_TOLERANCES.box_iou
    assert_fp16_parity(task, references(task), results, tol)


def test_dynamic_batch(emu_fp32, checkpoints, images, references):
    emu = emu_fp32
    model, results = predict(checkpoints["detect"], images, dynamic=True, predict_args={"batch": 2})
    assert_parity(references("detect"), results, tolerances("origin"))
    header, _ = read_om(model.predictor.model.artifact)
    assert header.input_shape == [-1, 3, 640, 640] and header.dynamic_batch_sizes == [1, 2, 4, 8]
    infers = emu.of("infer")
    assert [e["mode"] for e in infers] == ["dymbatch"] and infers[0]["feeds"][0]["shape"][0] == 2
    # 3 images -> padded to the 4 gear, padding dropped from the outputs
    engine = engine_of(model)
    outs = engine.infer(np.zeros((3, 3, 640, 640), np.float32))
    assert outs[0].shape[0] == 3 and emu.of("infer")[-1]["feeds"][0]["shape"][0] == 4


# -- precision: every atc run states its mode; the emulation computes what the mode implies ---------------------
def _plan_and_argv(tmp_path, chip="310P3", v2=True, **options):
    """The ExportPlan and atc command line for ``options`` on an emulated ``chip`` whose atc does or does not
    list --precision_mode_v2."""
    with emulate_ascend(tmp_path / f"{chip}-v2-{v2}", chip=chip, precision_mode_v2=v2):
        plugin = AscendPlugin()
        plan = plugin.export_plan("0", plugin.validate_options(options), (640, 640), 1)
        return plan, atc_command(Path("m.onnx"), Path("m"), plan, dict(plan.extra))


def _precision_flags(argv):
    return [a for a in argv if a.startswith("--precision_mode")]


@pytest.mark.parametrize(
    "chip, v2, options, expected",
    [
        # precision="fp32" (the default): as much FP32 as the SoC's cube units allow
        ("310P3", True, {}, "--precision_mode_v2=cube_fp16in_fp32out"),
        ("310P3", False, {}, "--precision_mode=force_fp32"),
        ("310B4", True, {"precision": "fp32"}, "--precision_mode_v2=cube_fp16in_fp32out"),
        ("910B3", True, {}, "--precision_mode_v2=origin"),
        ("910B3", False, {}, "--precision_mode=must_keep_origin_dtype"),
        # precision="fp16": FP16 on every SoC
        ("310P3", True, {"precision": "fp16"}, "--precision_mode_v2=fp16"),
        ("310P3", False, {"precision": "fp16"}, "--precision_mode=force_fp16"),
        ("910B3", True, {"precision": "fp16"}, "--precision_mode_v2=fp16"),
        # any ATC mode passes through, with the flag it was given as
        ("310P3", True, {"precision_mode": "allow_fp32_to_fp16"}, "--precision_mode=allow_fp32_to_fp16"),
        ("310P3", False, {"precision_mode": "allow_mix_precision"}, "--precision_mode=allow_mix_precision"),
        ("910B3", True, {"precision_mode_v2": "mixed_float16"}, "--precision_mode_v2=mixed_float16"),
    ],
)
def test_atc_command_states_the_precision(tmp_path, chip, v2, options, expected):
    plan, argv = _plan_and_argv(tmp_path, chip, v2, **options)
    assert _precision_flags(argv) == [expected]
    assert argv[:7] == [
        "atc",
        "--framework=5",
        "--model=m.onnx",
        "--output=m",
        "--input_format=NCHW",
        "--input_shape=images:1,3,640,640",
        f"--soc_version=Ascend{chip}",
    ]
    extra = dict(plan.extra)
    flag, mode = expected[2:].split("=")
    assert (extra["atc_precision_flag"], extra["atc_precision_mode"]) == (flag, mode)  # part of the cache key
    assert plan.precision == "fp32"  # the ONNX atc reads stays FP32 whatever the mode


@pytest.mark.parametrize("chip", ["310P3", "310B4", "910B3"])
@pytest.mark.parametrize("v2", [True, False])
def test_fp32_and_fp16_never_compile_the_same(tmp_path, chip, v2):
    from yolo_adapters.core.cache import make_key

    fp32_plan, fp32 = _plan_and_argv(tmp_path / "a", chip, v2, precision="fp32")
    fp16_plan, fp16 = _plan_and_argv(tmp_path / "b", chip, v2, precision="fp16")
    assert _precision_flags(fp32) and _precision_flags(fp16) and _precision_flags(fp32) != _precision_flags(fp16)
    assert make_key({"plan": fp32_plan}) != make_key({"plan": fp16_plan})


def test_precision_options_that_contradict_are_refused(tmp_path):
    plugin = AscendPlugin()
    with pytest.raises(OptionError, match="cannot be combined"):
        plugin.validate_options({"precision_mode": "force_fp16", "precision_mode_v2": "fp16"})
    with pytest.raises(OptionError, match="computes everything in FP16"):
        plugin.validate_options({"precision": "fp32", "precision_mode": "force_fp16"})
    with pytest.raises(OptionError, match="keeps FP32"):
        plugin.validate_options({"precision": "fp16", "precision_mode_v2": "origin"})
    for managed in ("--precision_mode=force_fp32", "--precision_mode_v2=origin"):
        with pytest.raises(OptionError, match="set from options"):
            plugin.validate_options({"atc_args": [managed]})
    with pytest.raises(ConversionError, match="no --precision_mode_v2"):
        _plan_and_argv(tmp_path, "310P3", False, precision_mode_v2="origin")  # CANN < 7.0: atc --help lacks it


def test_fp32_that_the_soc_cannot_keep_fails_with_the_reason(tmp_path, checkpoints, images):
    """310-series cube units have no FP32: ATC cannot compile "origin" there (the emulated atc fails as ATC does)."""
    with emulate_ascend(tmp_path, chip="310P3") as emu:
        with pytest.raises(ConversionError, match="Ascend910B"):
            predict(checkpoints["detect"], images[:1], precision_mode_v2="origin")
        assert emu.atc_calls()[-1]["rc"] == 1 and "--precision_mode_v2=origin" in emu.atc_calls()[-1]["argv"]


def _letterboxed(image, size=640):
    import cv2
    from ultralytics.data.augment import LetterBox

    x = LetterBox(size, auto=False, stride=32)(image=cv2.imread(str(image)))
    return np.ascontiguousarray(x[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255


def _raw_outputs(tmp_path, checkpoints, x, chip, **options):
    with emulate_ascend(tmp_path / chip / "-".join(f"{k}{v}" for k, v in options.items()), chip=chip):
        engine = _load_engine(checkpoints, **options)
        try:
            return engine.precision, [o.astype(np.float32) for o in engine.infer(x)]
        finally:
            engine.close()


def test_emulated_fp16_differs_from_fp32_by_an_fp16_sized_amount(tmp_path, checkpoints, images):
    """The emulated .om computes in the arithmetic of its mode: FP32 on a 910B ("origin") is ONNX Runtime's
    FP32; FP16 moves the raw outputs by a float16-sized amount, not zero and not more. (That the results stay
    within the published tolerances is test_parity_every_task / test_fp16_mode_matches_pytorch.)"""
    x = _letterboxed(images[0])
    exact, (fp32,) = _raw_outputs(tmp_path, checkpoints, x, "910B3")
    assert (exact.flag, exact.mode) == ("precision_mode_v2", "origin")
    cube, (mixed,) = _raw_outputs(tmp_path, checkpoints, x, "310P3")
    assert cube.mode == "cube_fp16in_fp32out"
    half, (fp16,) = _raw_outputs(tmp_path, checkpoints, x, "310P3", precision="fp16")
    assert half.mode == "fp16"
    scale = float(np.abs(fp32).max())
    d_cube, d_fp16 = float(np.abs(mixed - fp32).max()) / scale, float(np.abs(fp16 - fp32).max()) / scale
    u = 2.0**-11  # float16 unit roundoff (4.9e-4)
    assert u / 100 < d_cube < 10 * u, d_cube  # FP16 inputs of matrix ops only
    assert u / 10 < d_fp16 < 20 * u, d_fp16  # every tensor in FP16
    as_half = lambda a: a.astype(np.float16).astype(np.float32)  # noqa: E731
    assert np.array_equal(fp16, as_half(fp16))  # force_fp16: the outputs themselves are float16 values
    assert not np.array_equal(mixed, as_half(mixed))  # cube_fp16in_fp32out: FP32 results


# -- devices ------------------------------------------------------------------------------------------------
def test_device_id_passed_as_int(emu, checkpoints, images):
    predict(checkpoints["detect"], images[:1], device="ascend:1")
    assert emu.device_ids() == [1] and all(type(d) is int for d in emu.device_ids())
    assert emu.infer_devices() == [1]


def test_two_cards_both_used(emu, checkpoints, images, references):
    _, results = predict(checkpoints["detect"], images + images, device="ascend:0,1")
    assert sorted(emu.device_ids()) == [0, 1]
    used = emu.infer_devices()
    assert len(used) == 4 and set(used) == {0, 1}
    assert_parity(references("detect") * 2, results)


def test_npu_without_torch_npu_routes_here_without_importing_it(emu, checkpoints, images):
    if importlib.util.find_spec("torch_npu") is not None:
        assert not AscendPlugin().claims_device("npu")  # torch_npu installed: "npu" stays PyTorch's
        return
    assert AscendPlugin().claims_device("npu")
    model, _ = predict(checkpoints["detect"], images[:1], device="npu:1")
    assert model.predictor.model.format == "ascend" and emu.infer_devices() == [1]
    assert "torch_npu" not in sys.modules


def test_device_index_out_of_range(emu, checkpoints, images):
    assert npu_count() == 2
    with pytest.raises(DeviceError, match="npu-smi reports 2"):
        predict(checkpoints["detect"], images[:1], device="ascend:5")
    with pytest.raises(DeviceError, match="0..255"):
        predict(checkpoints["detect"], images[:1], device="ascend:300")
    with pytest.raises(DeviceError, match="list of NPU ids"):
        predict(checkpoints["detect"], images[:1], device="ascend:gpu")
    assert emu.device_ids() == []


def test_device_out_of_range_without_npu_smi(tmp_path, checkpoints, images):
    with emulate_ascend(tmp_path, cards=1, npu_smi=False) as emu:
        with pytest.raises(DeviceError, match="could not load"):
            predict(checkpoints["detect"], images[:1], device="ascend:1", soc_version="Ascend310P3")
        assert emu.npu_smi_calls() == []


def test_soc_from_npu_smi_option_and_env(emu, monkeypatch):
    assert detect_soc() == "Ascend310P3"
    backend = AscendPlugin()
    assert dict(backend.export_plan("0", {}, (640, 640), 1).extra)["atc_soc_version"] == "Ascend310P3"
    assert (
        dict(backend.export_plan("0", {"soc_version": "Ascend910B3"}, (640, 640), 1).extra)["atc_soc_version"]
        == "Ascend910B3"
    )
    monkeypatch.setenv("YOLO_ADAPTERS_SOC", "Ascend310B4")
    assert dict(backend.export_plan("0", {}, (640, 640), 1).extra)["atc_soc_version"] == "Ascend310B4"


# -- sessions: locking and teardown ------------------------------------------------------------------------
def _load_engine(checkpoints, device="0", **options):
    from yolo_adapters.integration.runtime import resolve_artifact

    backend = AscendPlugin()
    options = backend.validate_options(options)
    om = resolve_artifact(str(checkpoints["detect"]), backend, device, options)
    return backend.load(om, device, options)


def test_one_session_never_runs_two_calls_at_once(tmp_path, checkpoints):
    with emulate_ascend(tmp_path, cards=1, infer_delay=0.02) as emu:
        a, b = _load_engine(checkpoints), _load_engine(checkpoints)  # same .om, same NPU: one shared session
        assert len(emu.of("init")) == 1
        x = np.zeros(a.input_shape, np.float32)
        threads = [threading.Thread(target=lambda e=e: [e.infer(x) for _ in range(3)]) for e in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(emu.of("infer")) == 12 and emu.overlaps == 0
        # the detector itself works: unserialised calls on the raw session are caught
        raw = a._handles[0].session
        threads = [threading.Thread(target=raw.infer, args=([x],)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert emu.overlaps > 0
        a.close()
        b.close()


def test_teardown_frees_sessions(tmp_path, checkpoints):
    with emulate_ascend(tmp_path, cards=2) as emu:
        first = _load_engine(checkpoints, device="0,1")
        second = _load_engine(checkpoints, device="0")
        first.close()
        assert emu.freed_sessions() == [e["uid"] for e in emu.of("init") if e["device_id"] == 1]  # NPU 0 still in use
        first.close()  # idempotent
        assert len(emu.of("free")) == 1
        del second
        gc.collect()  # the finalizer releases what an engine dropped without close()
        assert sorted(e["device_id"] for e in emu.of("free")) == [0, 1]


def test_older_ais_bench_api(tmp_path, checkpoints):
    with emulate_ascend(tmp_path, cards=1, api="older") as emu:
        engine = _load_engine(checkpoints)
        session = engine._handles[0].session
        assert not hasattr(session, "free_resource") and not hasattr(session, "summary")
        engine.infer(np.zeros(engine.input_shape, np.float32))
        assert len(engine.summary()[0].exec_time_list) == 1  # through sumary()
        engine.close()  # no free_resource to call: must not fail
        assert emu.of("free") == []
    with emulate_ascend(tmp_path, cards=1, api="current") as emu:
        engine = _load_engine(checkpoints)
        engine.infer(np.zeros(engine.input_shape, np.float32))
        assert len(engine.summary()[0].exec_time_list) == 1
        engine.close()
        assert len(emu.of("free")) == 1


# -- model files ------------------------------------------------------------------------------------------
def _converted_om(checkpoints) -> Path:
    from yolo_adapters.integration.runtime import resolve_artifact

    backend = AscendPlugin()
    return resolve_artifact(str(checkpoints["detect"]), backend, "0", backend.validate_options({}))


def test_om_and_ascend_model_folder_used_as_is(emu, checkpoints, images, references):
    om = _converted_om(checkpoints)
    atc_calls = len(emu.atc_calls())
    _, from_file = predict(om, images, task="detect")
    _, from_folder = predict(om.parent, images, task="detect")
    assert om.parent.name.endswith("_ascend_model")
    assert len(emu.atc_calls()) == atc_calls  # nothing recompiled
    assert_parity(references("detect"), from_file)
    assert_parity(references("detect"), from_folder)


def test_ultralytics_ascend_export_folder_runs_on_any_card(tmp_path, checkpoints, images, references):
    """Ultralytics' own format="ascend" export (8.4.x): a *_ascend_model/ folder holding <stem>_<SoC>.om, compiled
    with --precision_mode=force_fp16, and Ultralytics' metadata.yaml. Its own backend always opens NPU 0; ours
    loads the folder with its metadata on the NPU asked for. The folder is made by Ultralytics' exporter itself,
    running the stand-in atc."""
    import shutil

    from ultralytics import YOLO
    from ultralytics.engine.exporter import export_formats

    if "ascend" not in export_formats()["Argument"]:
        pytest.skip("this Ultralytics has no format='ascend' export (8.4.x adds it)")
    pt = tmp_path / "person.pt"
    shutil.copy(checkpoints["detect"], pt)
    with emulate_ascend(tmp_path / "emu", cards=2) as emu:
        folder = Path(YOLO(str(pt)).export(format="ascend", name="Ascend310P3", verbose=False))
        assert folder.name == "person_ascend_model"
        assert sorted(p.name for p in folder.iterdir()) == ["metadata.yaml", "person_Ascend310P3.om"]
        assert "--precision_mode=force_fp16" in emu.atc_calls()[-1]["argv"]
        model, results = predict(folder, images, device="ascend:1", task="detect")
        assert emu.device_ids() == [1] and emu.infer_devices() == [1] * len(images)
    engine = engine_of(model)
    assert engine.om.name == "person_Ascend310P3.om"
    assert (engine.precision.mode, engine.precision.soc, engine.precision.kind) == ("force_fp16", "Ascend310P3", "fp16")
    assert results[0].names == {0: "person"}  # from Ultralytics' metadata.yaml
    assert_fp16_parity("detect", references("detect"), results, tolerances("fp16"))


def test_info_shows_the_precision_mode_of_cached_models(emu, checkpoints):
    from yolo_adapters.tools.info import collect_info, format_info

    om = _converted_om(checkpoints)  # precision="fp32" on the emulated 310P3
    info = collect_info()
    ascend = next(b for b in info["backends"] if b["name"] == "ascend")
    key = om.relative_to(Path(om.as_posix().split("/artifacts/")[0]) / "artifacts").parts[0]
    shown = "--precision_mode_v2=cube_fp16in_fp32out, Ascend310P3"
    assert ascend["environment"]["cached_models"][key] == shown
    assert f"{key} ({shown})" in format_info(info)


def test_om_without_metadata_needs_options(emu, checkpoints, images, references, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "person.om").write_bytes(_converted_om(checkpoints).read_bytes())
    with pytest.raises(ModelFormatError, match="metadata.yaml"):
        predict(bare / "person.om", images, task="detect")
    _, results = predict(bare / "person.om", images, task="detect", metadata={"task": "detect"}, names=["person"])
    assert_parity(references("detect"), results)


def test_om_with_wrong_imgsz(emu, checkpoints, images):
    om = _converted_om(checkpoints)
    with pytest.raises(ModelFormatError, match=r"compiled for 640x640 images but imgsz=\[320, 320\]"):
        predict(om, images[:1], task="detect", imgsz=320)


# -- errors -----------------------------------------------------------------------------------------------
def test_ais_bench_missing(monkeypatch, checkpoints, images):
    monkeypatch.setitem(sys.modules, "ais_bench", None)  # not importable, whatever is installed
    assert importlib.util.find_spec("ais_bench") is None
    message = AscendPlugin().missing_requirements()
    assert "not on PyPI" in message and "gitee.com/ascend/tools" in message
    with pytest.raises(BackendUnavailableError, match="gitee.com/ascend/tools"):
        yolo_adapters.activate("ascend")


def test_cann_environment_not_sourced(tmp_path, checkpoints, images):
    with emulate_ascend(tmp_path, cann_env=False):
        with pytest.raises(BackendUnavailableError, match="set_env.sh"):
            yolo_adapters.activate("ascend")


def test_atc_missing_gives_the_command_then_the_manual_om_works(tmp_path, checkpoints, images, references):
    with emulate_ascend(tmp_path, cards=1, atc=False) as emu:
        with pytest.raises(ConversionError) as caught:
            predict(checkpoints["detect"], images, soc_version="Ascend310P3", cache_dir=str(tmp_path / "cache"))
        message = str(caught.value)
        command = (  # no atc to ask about --precision_mode_v2: the flag every CANN version takes
            "atc --framework=5 --model=model.onnx --output=model --input_format=NCHW "
            "--input_shape=images:1,3,640,640 --soc_version=Ascend310P3 --precision_mode=force_fp32"
        )
        assert command in message
        pending = Path(message.split("cd ", 1)[1].split(" && ", 1)[0])
        assert pending.parent == tmp_path / "cache" / "ascend_pending"
        assert (pending / "model.onnx").is_file() and (pending / "metadata.yaml").is_file()
        assert emu.atc_calls() == []
        # what the user does on a CANN machine, here with the stand-in atc, then passes the .om
        argv = command.split()[1:]
        done = subprocess.run(
            [sys.executable, "-m", "yolo_adapters.testing.atc", *argv], cwd=pending, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        _, results = predict(pending / "model.om", images, task="detect")
        assert_parity(references("detect"), results)


# -- the stand-in itself: exactly the contract, so the backend cannot lean on leniency -----------------------
def test_stand_in_enforces_the_session_contract(emu, checkpoints, tmp_path):
    om = _converted_om(checkpoints)
    from ais_bench.infer.interface import InferSession

    with pytest.raises(TypeError):
        InferSession("0", str(om))
    with pytest.raises(ValueError):
        InferSession(256, str(om))
    spaced = tmp_path / "with space"
    spaced.mkdir()
    (spaced / "m.om").write_bytes(om.read_bytes())
    with pytest.raises(ValueError):
        InferSession(0, str(spaced / "m.om"))
    with pytest.raises(ValueError):
        InferSession(0, str(om.with_suffix(".onnx")))
    with pytest.raises(ValueError):
        InferSession(0, str(om.parent))
    session = InferSession(0, str(om))
    desc = session.get_inputs()[0]
    assert desc.shape == [1, 3, 640, 640] and desc.realsize == 3 * 640 * 640 * 4
    x = np.zeros((1, 3, 640, 640), np.float32)
    with pytest.raises(ValueError):
        session.infer((x,))
    with pytest.raises(RuntimeError):
        session.infer([x.astype(np.float16)])  # no dtype conversion: wrong byte size
    with pytest.raises(RuntimeError):
        session.infer([x], mode="dymbatch")
    assert session.infer([np.asfortranarray(x)])[0].dtype == np.float32  # made C-contiguous, as the real one does
    session.free_resource()
    with pytest.raises(RuntimeError):
        session.infer([x])


def test_torch_npu_route_hands_cpu_tensors_to_post_processing():
    """With torch_npu installed, `npu` stays Ultralytics' own route; its outputs reach NMS as host tensors."""
    import torch

    from yolo_adapters.integration.module import NPUOutputsOnHost
    from yolo_adapters.integration.patching.wrappers import autobackend_wrapper

    moved = []

    class OnDevice(torch.Tensor):  # stands in for an NPU tensor: records the move to the host
        def cpu(self, *args, **kwargs):
            moved.append(tuple(self.shape))
            return torch.Tensor(self.as_subclass(torch.Tensor))

    class StockOnNPU(torch.nn.Module):  # what Ultralytics' AutoBackend is on torch_npu: device type "npu"
        def __init__(self, model=None, device=None):
            super().__init__()
            self.device = type("NPUDevice", (), {"type": "npu"})()
            self.stride = 32

        def forward(self, im):
            return [torch.zeros(1, 56, 10).as_subclass(OnDevice), torch.zeros(1, 32, 4, 4).as_subclass(OnDevice)]

    built = autobackend_wrapper(StockOnNPU, None, (), {"model": "x.pt", "device": "npu:0"})
    assert isinstance(built, NPUOutputsOnHost) and built.stride == 32 and built.device.type == "npu"
    out = built(torch.zeros(1, 3, 32, 32))
    assert moved == [(1, 56, 10), (1, 32, 4, 4)]
    assert all(type(t) is torch.Tensor for t in out)

    plain = autobackend_wrapper(lambda model=None, device=None: torch.nn.Identity(), None, (), {"device": "cpu"})
    assert isinstance(plain, torch.nn.Identity)  # every other stock route is untouched
