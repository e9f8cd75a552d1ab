"""yolo_adapters.ray: batch inference on Ray Data against stock PyTorch, faults, a simulated two-node cluster.

Runs on a local Ray with 2 CPUs (module-scoped) and, last, on a two-node ``ray.cluster_utils.Cluster`` on this
machine. Every Ray job here is bounded: ``_bounded`` fails the test instead of letting a starved job hang.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.support.models import build_checkpoint
from tests.support.needs import require

ray = require("ray", extra="ray,test")

from yolo_adapters.compare.parity import DEFAULT_TOLERANCES, compare_results  # noqa: E402

IMGSZ = 320
JOB_TIMEOUT = 150.0  # seconds; a job that takes longer is stuck (starved), not slow


def _bounded(fn, timeout: float = JOB_TIMEOUT):
    """Run ``fn`` (a Ray job) on a thread and fail the test if it does not finish within ``timeout``."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"Ray job still running after {timeout:.0f}s: starved or hung")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _map_workers() -> list:
    """This test process's Ray Data actor processes (never another user's Ray on the same machine)."""
    import psutil

    found = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "MapWorker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, pose_pt: Path) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("ray_models")
    return {"detect": build_checkpoint("detect", out), "segment": build_checkpoint("segment", out), "pose": pose_pt}


@pytest.fixture(scope="module")
def stock(models: dict[str, Path], images: list[Path]) -> dict[str, dict[str, object]]:
    """TASK -> {path: stock PyTorch Results} at the test size."""
    from ultralytics import YOLO

    out = {}
    for task, pt in models.items():
        model = YOLO(str(pt))
        out[task] = {str(p): model.predict(str(p), imgsz=IMGSZ, device="cpu", verbose=False)[0] for p in images}
    return out


@pytest.fixture(scope="module")
def image_dataset(local_ray, images: list[Path]):
    """The test images as ray.data.read_images gives them: RGB HWC uint8 ``image`` plus ``path``."""
    return ray.data.read_images([str(p) for p in images], include_paths=True, mode="RGB").materialize()


def _check_parity(rows: list[dict], reference: dict[str, object], names: dict) -> None:
    import yolo_adapters.ray as yar
    from yolo_adapters.ray import _encode

    assert {Path(r["path"]).name for r in rows} == {Path(p).name for p in reference}
    by_name = {Path(p).name: res for p, res in reference.items()}
    for row in rows:
        assert row["error"] is None, row["error"]
        assert row["engine"] == "openvino:CPU"
        ref = by_name[Path(row["path"]).name]
        assert tuple(row["orig_shape"]) == tuple(ref.orig_shape)
        if ref.masks is not None:  # rows hold masks in image pixels; stock keeps them at inference size
            ref = yar.to_results(_encode.encode_result(ref, row["path"], "torch"), names)
        agreement = compare_results(ref, yar.to_results(row, names), tol=DEFAULT_TOLERANCES)
        assert agreement.reference > 0, "stock PyTorch found nothing: the comparison would prove nothing"
        assert agreement.passed(DEFAULT_TOLERANCES), (row["path"], agreement.failures())


# -- cheap unit tests (no Ray job) ------------------------------------------------------------------
def test_import_yolo_adapters_does_not_import_ray():
    code = "import sys, yolo_adapters, yolo_adapters.tools.cli; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_only_the_ray_subpackage_imports_ray():
    root = Path(__file__).resolve().parents[1] / "yolo_adapters"
    offenders = []
    for py in root.rglob("*.py"):
        if "ray" in py.relative_to(root).parts[:1]:
            continue
        for line in py.read_text().splitlines():
            if line.strip().startswith(("import ray", "from ray")):
                offenders.append(f"{py}: {line.strip()}")
    assert not offenders


def test_mask_rle_round_trip_and_coco_convention():
    import yolo_adapters.ray as yar

    rng = np.random.default_rng(0)
    for mask in (rng.random((7, 5)) > 0.5, np.ones((3, 4), bool), np.zeros((2, 2), bool)):
        counts = yar.encode_mask(mask)
        assert sum(counts) == mask.size
        np.testing.assert_array_equal(yar.decode_mask(counts, mask.shape), mask)
    # column-major, first run counts zeros: a 2x2 mask with only its top-right pixel set
    assert yar.encode_mask(np.array([[0, 1], [0, 0]], bool)) == [2, 1, 1]
    assert yar.encode_mask(np.array([[1, 0], [0, 0]], bool)) == [0, 1, 3]


def test_semantic_and_depth_cells_round_trip():
    from yolo_adapters.ray import _encode

    classes = np.arange(12, dtype=np.int64).reshape(3, 4) % 5
    np.testing.assert_array_equal(_encode.decode_semantic(_encode.encode_semantic(classes)), classes)
    many = (np.arange(12).reshape(3, 4) * 100).astype(np.int64)  # over 255 classes: 16-bit PNG
    np.testing.assert_array_equal(_encode.decode_semantic(_encode.encode_semantic(many)), many)
    depth = np.linspace(0.5, 80.0, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(_encode.decode_depth(_encode.encode_depth(depth)), depth, rtol=1e-3)


def test_accelerator_ids_map_to_the_devices_actors_open():
    from yolo_adapters.ray import accelerator_device

    # Ray hides other cards: the actor's own cards are 0..n-1 whatever physical ids it got
    assert accelerator_device("ascend", "0", {"NPU": ["3"]}, {"ASCEND_RT_VISIBLE_DEVICES": "3"}) == "0"
    assert accelerator_device("ascend", "0", {"NPU": ["2", "5"]}, {"ASCEND_RT_VISIBLE_DEVICES": "2,5"}) == "0,1"
    assert accelerator_device("ascend", "0", {"NPU": ["2"]}, {}) == "2"  # RAY_EXPERIMENTAL_NOSET_...: physical ids
    assert accelerator_device("ascend", "1", {}, {}) == "1"  # no NPU resource asked: as given
    assert accelerator_device("onnxruntime", "cuda", {"GPU": ["4"]}, {"CUDA_VISIBLE_DEVICES": "4"}) == "cuda:0"
    assert accelerator_device("onnxruntime", "cuda:1", {"GPU": ["4"]}, {}) == "cuda:4"
    assert accelerator_device("onnxruntime", "cpu", {"GPU": ["0"]}, {"CUDA_VISIBLE_DEVICES": "0"}) == "cpu"
    assert accelerator_device("openvino", "CPU", {"GPU": ["0"]}, {}) == "CPU"


def test_accelerator_devices_ask_ray_for_their_card_by_default():
    from yolo_adapters.ray import accelerator_request

    assert accelerator_request("onnxruntime", "cuda", {"CPU": 8, "GPU": 2}) == (1.0, {})
    assert accelerator_request("onnxruntime", "tensorrt:0", {"GPU": 1}) == (1.0, {})
    assert accelerator_request("onnxruntime", "cuda", {"CPU": 8}) == (None, {})  # Ray sees no GPU: as given
    assert accelerator_request("onnxruntime", "cpu", {"GPU": 2}) == (None, {})
    assert accelerator_request("ascend", "0", {"NPU": 8}) == (None, {"NPU": 1.0})
    assert accelerator_request("openvino", "CPU", {"GPU": 1, "NPU": 1}) == (None, {})


def test_engine_threads_follow_the_actor_cpus():
    from yolo_adapters.ray import thread_options, threads_for

    assert [threads_for(c) for c in (None, 0.25, 0.5, 1, 1.5, 2, 4)] == [1, 1, 1, 1, 2, 2, 4]
    assert thread_options("openvino", {"hint": "latency"}, 2) == {
        "hint": "latency",
        "config": {"INFERENCE_NUM_THREADS": 2},
    }
    assert (
        thread_options("openvino", {"config": {"INFERENCE_NUM_THREADS": 3}}, 2)["config"]["INFERENCE_NUM_THREADS"] == 3
    )
    assert thread_options("onnxruntime", {}, 2) == {"intra_op_threads": 2}
    assert thread_options("onnxruntime", {"intra_op_threads": 4}, 2) == {"intra_op_threads": 4}


def test_predictor_in_process_sizes_openvino_threads(models, images, stock):
    """The Predictor outside Ray (threads=1): its compiled model really runs one inference thread."""
    import yolo_adapters.ray as yar

    engine = yar.prepare(str(models["detect"]), "openvino", imgsz=IMGSZ, ship_model=False)
    predictor = yar.Predictor(engine, threads=1, predict_args={"imgsz": IMGSZ})
    table = predictor({"path": np.array([str(p) for p in images], dtype=object)})
    compiled = predictor.model.predictor.model.engine.compiled
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 1
    _check_parity(table.to_pylist(), stock["detect"], predictor.names)


def test_predictor_in_process_sizes_onnxruntime_threads(models, images):
    import yolo_adapters.ray as yar

    engine = yar.prepare(str(models["detect"]), "onnxruntime", imgsz=IMGSZ, ship_model=False)
    predictor = yar.Predictor(engine, threads=1, predict_args={"imgsz": IMGSZ})
    rows = predictor({"path": np.array([str(images[0])], dtype=object)}).to_pylist()
    assert rows[0]["engine"] == "onnxruntime:cpu" and rows[0]["error"] is None and len(rows[0]["boxes"]) > 0
    assert predictor.model.predictor.model.engine.session.get_session_options().intra_op_num_threads == 1


def test_predictor_decodes_bytes_and_odd_layouts_in_process(models, images, stock):
    """A read_binary_files-style ``bytes`` column: good bytes match stock, corrupt bytes give an error row;
    grey and RGBA arrays are accepted."""
    import cv2

    import yolo_adapters.ray as yar

    engine = yar.prepare(str(models["detect"]), "openvino", imgsz=IMGSZ, ship_model=False)
    predictor = yar.Predictor(engine, image_column="bytes", threads=1, predict_args={"imgsz": IMGSZ})
    batch = {
        "bytes": np.array([images[0].read_bytes(), b"garbage"], dtype=object),
        "path": np.array([str(images[0]), "bad.jpg"], dtype=object),
    }
    good, bad = predictor(batch).to_pylist()
    _check_parity([good], {str(images[0]): stock["detect"][str(images[0])]}, predictor.names)
    assert bad["path"] == "bad.jpg" and "cannot decode" in bad["error"]

    rgb = cv2.imread(str(images[1]))[..., ::-1]
    column = np.empty(2, dtype=object)  # ragged images, as Ray hands them over
    column[0], column[1] = rgb[..., 0].copy(), np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    arrays = {"image": column}
    grey, rgba = yar.Predictor(engine, threads=1, predict_args={"imgsz": IMGSZ})(arrays).to_pylist()
    assert grey["error"] is None and rgba["error"] is None and grey["orig_shape"] == rgba["orig_shape"] == [720, 1280]
    _check_parity([dict(rgba, path=str(images[1]))], {str(images[1]): stock["detect"][str(images[1])]}, predictor.names)


def test_shipped_model_unpacks_to_a_loadable_copy(models, tmp_path):
    """What an actor on a node without the cache gets: the artifact's folder from the object store."""
    from yolo_adapters.ray import _predictor

    engine = _predictor.prepare(str(models["detect"]), "openvino", imgsz=IMGSZ, ship_model=False)
    artifact = Path(engine["artifact"])
    copy = _predictor._unpack(_predictor._pack(artifact), _predictor._inner_path(artifact))
    assert copy != artifact and copy.name == artifact.name
    assert sorted(p.name for p in copy.parent.iterdir()) == sorted(p.name for p in artifact.parent.iterdir())


# -- local Ray (2 CPUs) ---------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["detect", "pose", "segment"])
def test_paths_and_dataset_match_pytorch(local_ray, models, stock, images, image_dataset, task):
    import yolo_adapters.ray as yar

    # detect runs with the default pool size (2 actors for paths; 1 beside the reads for a Dataset on 2 CPUs)
    concurrency = None if task == "detect" else 1
    from_paths = yar.predict(
        [str(p) for p in images], str(models[task]), imgsz=IMGSZ, batch_size=1, concurrency=concurrency
    )
    from_images = yar.predict(image_dataset, str(models[task]), imgsz=IMGSZ, batch_size=2, concurrency=concurrency)
    for ds in (from_paths, from_images):
        ds = _bounded(ds.materialize)  # run once; schema and rows come from the materialized blocks
        rows = ds.take_all()
        meta = yar.read_metadata(ds)
        assert meta["task"] == task and meta["engine"] == "openvino:CPU"
        _check_parity(rows, stock[task], meta["names"])
        for row in rows:
            if task == "pose":
                assert np.asarray(row["keypoints"]).shape[1:] == (17, 3)
            if task == "segment":
                assert len(row["masks"]) == len(row["boxes"])


def test_swapped_channels_fail_the_comparison(local_ray, models, stock, image_dataset):
    """read_images gives RGB; telling the Predictor it is BGR feeds Ultralytics the wrong order, and parity
    notices: the RGB->BGR conversion is what makes the dataset path match stock PyTorch."""
    import yolo_adapters.ray as yar

    ds = _bounded(
        yar.predict(image_dataset, str(models["pose"]), imgsz=IMGSZ, channels="BGR", concurrency=1).materialize
    )
    rows = ds.take_all()
    by_name = {Path(p).name: res for p, res in stock["pose"].items()}
    names = yar.read_metadata(ds)["names"]
    verdicts = [compare_results(by_name[Path(r["path"]).name], yar.to_results(r, names)).passed() for r in rows]
    assert not all(verdicts), "swapping the channel order changed nothing: the comparison cannot see channel order"


def test_corrupt_image_gives_error_row_and_fail_fast_raises(local_ray, models, images, tmp_path):
    import yolo_adapters.ray as yar

    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(images[1], folder / "a_good.jpg")
    (folder / "b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" * 10)
    (folder / "c_truncated.jpg").write_bytes(images[0].read_bytes()[:200])
    ds = yar.predict(folder, str(models["detect"]), imgsz=IMGSZ, batch_size=4, concurrency=1)
    rows = {Path(r["path"]).name: r for r in _bounded(ds.take_all)}
    assert set(rows) == {"a_good.jpg", "b_corrupt.jpg", "c_truncated.jpg"}
    assert rows["a_good.jpg"]["error"] is None and len(rows["a_good.jpg"]["boxes"]) > 0
    for bad in ("b_corrupt.jpg", "c_truncated.jpg"):
        assert "cannot decode" in rows[bad]["error"] and rows[bad]["boxes"] is None

    failing = yar.predict(folder, str(models["detect"]), imgsz=IMGSZ, batch_size=4, concurrency=1, fail_fast=True)
    with pytest.raises(Exception, match="cannot decode image"):
        _bounded(failing.take_all)


def test_failed_conversion_fails_before_any_actor(local_ray, models, tmp_path, monkeypatch):
    import yolo_adapters.ray as yar
    from yolo_adapters.core.registry import get_backend
    from yolo_adapters.errors import AdapterError, ConversionError

    plugin = get_backend("openvino")

    def broken(exported, plan):
        raise ConversionError("the exporter broke on purpose")

    monkeypatch.setattr(plugin, "finish_artifact", broken)
    before = {w.pid for w in _map_workers()}  # actors of an earlier job may still be shutting down
    with pytest.raises(ConversionError, match="broke on purpose"):
        yar.predict(
            [str(models["detect"])], str(models["detect"]), imgsz=IMGSZ, options={"cache_dir": str(tmp_path / "c")}
        )
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(AdapterError):
        yar.predict([str(corrupt)], str(corrupt), imgsz=IMGSZ)
    from yolo_adapters.tools.cli import main

    rc = main(["predict-dataset", str(corrupt), "--model", str(corrupt), "--output", str(tmp_path / "never")])
    assert rc == 2 and not (tmp_path / "never").exists()
    assert {w.pid for w in _map_workers()} <= before, "an actor started although the model never converted"


def test_sigkill_of_an_actor_mid_job_loses_and_repeats_nothing(local_ray, models, images, tmp_path):
    import yolo_adapters.ray as yar

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(24):
        shutil.copy(images[i % 2], folder / f"img{i:02d}{images[i % 2].suffix}")
    ds = yar.predict(folder, str(models["detect"]), imgsz=IMGSZ, batch_size=2, concurrency=1)

    def run() -> tuple[list[str], int, int]:
        seen: list[str] = []
        killed = None
        for batch in ds.iter_batches(batch_size=None, batch_format="pandas", prefetch_batches=0):
            seen.extend(batch["path"].tolist())
            assert batch["error"].isna().all()
            if killed is None:
                workers = _map_workers()
                assert workers, "no actor process found to kill"
                killed = workers[0].pid
                os.kill(killed, signal.SIGKILL)
                before = len(seen)
        return seen, before, killed

    seen, before, killed = _bounded(run, timeout=240)
    assert before < 24, "the job had finished before the kill: nothing was tested"
    assert sorted(seen) == sorted(str(p) for p in folder.iterdir()), "an image was lost or repeated"
    assert all(w.pid != killed for w in _map_workers())


def test_cli_writes_parquet(local_ray, models, images, tmp_path, capsys):
    import pyarrow.parquet as pq

    import yolo_adapters.ray as yar
    from yolo_adapters.tools.cli import main

    out = tmp_path / "out"
    rc = _bounded(
        lambda: main(
            [
                "predict-dataset",
                *map(str, images),
                "--model",
                str(models["segment"]),
                "--device",
                "openvino",
                "--output",
                str(out),
                "--concurrency",
                "1",
                "--batch-size",
                "2",
                "-a",
                f"imgsz={IMGSZ}",
            ]
        )
    )
    assert rc == 0
    table = pq.read_table(out)
    assert table.num_rows == 2 and set(yar.COLUMNS) <= set(table.column_names)
    meta = yar.read_metadata(out)
    assert meta["names"] == {0: "person"} and meta["task"] == "segment"
    row = table.to_pylist()[0]
    masks = yar.decode_masks(row)
    assert masks.shape == (len(row["boxes"]), *row["orig_shape"]) and masks.any()


# -- a simulated two-node cluster (last: it replaces the local Ray) ----------------------------------
def test_two_node_cluster(models, stock, images, local_ray):
    from ray.cluster_utils import Cluster

    import yolo_adapters.ray as yar

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        paths = [str(p) for p in images] * 2
        # two 1-CPU actors, one per node; the model travels through the object store (ship_model=True)
        ds = yar.predict(paths, str(models["detect"]), imgsz=IMGSZ, batch_size=1, concurrency=2, ship_model=True)
        ds = _bounded(ds.materialize, timeout=200)
        rows = ds.take_all()
        assert len(rows) == 4
        _check_parity(rows, stock["detect"], yar.read_metadata(ds)["names"])
        nodes = {
            a["Address"]["NodeID"]
            for a in ray._private.state.actors().values()
            if "MapWorker" in a.get("ActorClassName", "")
        }
        assert len(nodes) == 2, f"the actors ran on {len(nodes)} node(s), not two"
    finally:
        ray.shutdown()
        cluster.shutdown()
