"""yolo_adapters.ray: batch inference on Ray Data against stock PyTorch, faults, pool sizing and the stall
watchdog, a simulated two-node cluster.

Runs on a local Ray with 2 CPUs (module-scoped) and, last, on a two-node ``ray.cluster_utils.Cluster`` on this
machine. Every Ray job here is bounded: ``_bounded`` fails the test instead of letting a starved job hang, and
the sizing and watchdog tests carry their own ``pytest.mark.timeout``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.needs import require

ray = require("ray", extra="ray,test")

from yolo_adapters.compare.parity import DEFAULT_TOLERANCES, compare_results  # noqa: E402

IMGSZ = 320
JOB_TIMEOUT = 150.0  # seconds; a job that takes longer is stuck (starved), not slow
# seconds without progress before the watchdog ends a job meant to stall: a read slowed by a busy host must
# finish within it, or the watchdog names the read instead of the stalled operator
STALL_TIMEOUT = 8.0


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


def _settled_map_workers(quiet: float = 2.0, limit: float = 30.0) -> set[int]:
    """The MapWorker pids once none has come or gone for ``quiet`` seconds: an earlier test's autoscaling pool may
    still be starting an actor when its job ends, which must not count as an actor started here."""
    deadline = time.monotonic() + limit
    seen, since = {w.pid for w in _map_workers()}, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.2)
        now = {w.pid for w in _map_workers()}
        if now != seen:
            seen, since = now, time.monotonic()
    return seen


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


def _actor_cpus(ds) -> float:
    """The CPUs per actor the job asks Ray for (its last operator is predict's map_batches)."""
    return float(ds._logical_plan.dag.ray_remote_args["num_cpus"])


def _same_row(row: dict) -> dict:
    """An upstream ``map`` that changes nothing (a task of its own, 1 CPU)."""
    return row


def _sleep_forever(row: dict) -> dict:
    """An upstream ``map`` that never returns: the stall the watchdog must name."""
    time.sleep(3600)
    return row


def _free_cpus_come_back(total: float, within: float = 60.0) -> bool:
    """Whether the cluster's CPUs are all free again within ``within`` seconds (the stalled tasks ended)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU", 0.0) >= total:
            return True
        time.sleep(0.5)
    return False


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
def models(checkpoints: dict[str, Path], pose_pt: Path) -> dict[str, Path]:
    """The run's test checkpoints (tests/conftest.py): built once, their conversions shared with the other files."""
    return {"detect": checkpoints["detect"], "segment": checkpoints["segment"], "pose": pose_pt}


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


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory, images: list[Path]) -> Path:
    """Four images in a folder, as a user points ``read_images`` at it."""
    folder = tmp_path_factory.mktemp("ray_folder")
    for i in range(4):
        shutil.copy(images[i % 2], folder / f"img{i}{images[i % 2].suffix}")
    return folder


@pytest.fixture(scope="module")
def folder_stock(stock, images: list[Path], image_folder: Path) -> dict[str, object]:
    """Stock PyTorch detect Results for the folder's images (copies of the test images)."""
    return {str(image_folder / f"img{i}{images[i % 2].suffix}"): stock["detect"][str(images[i % 2])] for i in range(4)}


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

    # twice the actor's CPUs (its engine uses the CPUs other actors leave idle between inferences), at most the node's
    assert [threads_for(c) for c in (None, 0.25, 0.5, 1, 1.5, 2, 4)] == [2, 1, 1, 2, 3, 4, 8]
    assert [threads_for(c, node_cpus=2) for c in (0.5, 1, 2, 4)] == [1, 2, 2, 2]
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


class _FakeOp:
    """What the watchdog reads of a Ray Data physical operator."""

    def __init__(self, name: str, running: int = 0, done: bool = False) -> None:
        from types import SimpleNamespace

        self.name, self.running, self.done = name, running, done
        self.metrics = SimpleNamespace(num_tasks_finished=0, num_outputs_taken=0)
        self.actors = SimpleNamespace(running=0, pending=0, restarting=0)

    def has_completed(self) -> bool:
        return self.done

    def num_active_tasks(self) -> int:
        return self.running

    def get_actor_info(self):
        return self.actors


class _FakeState:
    def total_enqueued_input_blocks(self) -> int:
        return 0

    def total_enqueued_output_blocks(self) -> int:
        return 0


def _fake_executor(*ops: _FakeOp, waiting: bool = True):
    from types import SimpleNamespace

    return SimpleNamespace(_topology={op: _FakeState() for op in ops}, _consumer_idling=lambda: waiting)


def test_watchdog_names_the_operator_a_stalled_job_waits_on():
    """Tasks in flight that produce nothing are the stall (downstream operators only wait for them); with no
    task in flight the first unfinished operator is the one that could not start (starved of resources)."""
    from yolo_adapters.ray._watchdog import StallError, StallWatchdog

    def stalls(executor) -> StallError:
        watchdog = StallWatchdog()
        watchdog.timeout = 5.0
        watchdog.on_execution_step(executor)  # the first look: progress
        watchdog.since -= 10.0  # ten seconds without a change
        with pytest.raises(StallError) as info:
            watchdog.on_execution_step(executor)
        return info.value

    read, mapped = _FakeOp("ReadImage", done=True), _FakeOp("Map(slow)", running=1)
    error = stalls(_fake_executor(read, mapped, _FakeOp("MapBatches(Predictor)")))
    assert error.operator == "Map(slow)" and "1 task in flight" in str(error) and error.timeout == 5.0
    starved = stalls(_fake_executor(_FakeOp("ReadImage"), _FakeOp("MapBatches(Predictor)")))
    assert starved.operator == "ReadImage" and "none could start" in str(starved)


def test_stall_timeout_takes_positive_seconds_or_none():
    from yolo_adapters.errors import OptionError
    from yolo_adapters.ray._watchdog import check_stall_timeout

    assert check_stall_timeout(None) is None and check_stall_timeout(5) == 5.0
    for bad in (0, -1, True, "10"):
        with pytest.raises(OptionError, match="stall_timeout"):
            check_stall_timeout(bad)


def test_watchdog_counts_any_change_as_progress_and_a_slow_consumer_as_no_stall():
    from yolo_adapters.ray._watchdog import StallWatchdog

    op = _FakeOp("MapBatches(Predictor)", running=1)
    watchdog = StallWatchdog()
    watchdog.timeout = 5.0
    watchdog.on_execution_step(_fake_executor(op))
    watchdog.since -= 10.0
    op.metrics.num_outputs_taken += 1  # a batch came out: progress
    watchdog.on_execution_step(_fake_executor(op))
    watchdog.since -= 10.0
    op.actors.pending = 1  # an actor restarts: progress too
    watchdog.on_execution_step(_fake_executor(op))
    watchdog.since -= 10.0
    watchdog.on_execution_step(_fake_executor(op, waiting=False))  # rows wait for the consumer: not a stall
    watchdog.since -= 10.0
    watchdog.on_execution_step(_fake_executor(op, waiting=False))


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


# -- sizing and stalls on the local Ray (2 CPUs) --------------------------------------------------------------
@pytest.mark.timeout(240)
def test_read_images_with_two_actors_on_two_cpus_finishes(local_ray, models, image_folder, folder_stock):
    """The reported hang: read_images, then two actors on a 2-CPU Ray. Each actor gets half a CPU (one engine
    thread), the read task the other CPU, and the rows match stock PyTorch."""
    import yolo_adapters.ray as yar

    ds = ray.data.read_images(str(image_folder), include_paths=True)
    out = yar.predict(ds, model=str(models["detect"]), device="openvino", batch_size=4, concurrency=2, imgsz=IMGSZ)
    assert _actor_cpus(out) == 0.5
    done = _bounded(out.materialize)
    _check_parity(done.take_all(), folder_stock, yar.read_metadata(done)["names"])


@pytest.mark.timeout(240)
def test_unchecked_the_reported_pool_starves_its_read_and_the_watchdog_names_it(local_ray, models, image_folder):
    """The same job with check_fit=False keeps two 1-CPU actors: the read task never gets a CPU (what the sizing
    prevents), and the watchdog ends the wait with StallError naming ReadImage; the actors are gone after."""
    import yolo_adapters.ray as yar

    ds = ray.data.read_images(str(image_folder), include_paths=True)
    out = yar.predict(
        ds,
        str(models["detect"]),
        batch_size=4,
        concurrency=2,
        imgsz=IMGSZ,
        check_fit=False,
        stall_timeout=STALL_TIMEOUT,
    )
    assert _actor_cpus(out) == 1.0
    with pytest.raises(yar.StallError, match="ReadImage stalled") as info:
        _bounded(out.take_all)
    assert info.value.operator == "ReadImage" and "0 of 2 CPU" in str(info.value)
    assert _free_cpus_come_back(2.0), "the starved job's actors still hold the CPUs"


@pytest.mark.timeout(240)
def test_binary_files_and_a_map_upstream_with_an_autoscaling_pool(local_ray, models, image_folder, folder_stock):
    import yolo_adapters.ray as yar

    ds = ray.data.read_binary_files(str(image_folder), include_paths=True).map(_same_row)  # a Python map upstream
    out = yar.predict(ds, str(models["detect"]), image_column="bytes", concurrency=(1, 2), batch_size=2, imgsz=IMGSZ)
    assert _actor_cpus(out) == 0.5  # the autoscaling max, two actors, fits beside the read-and-map tasks
    done = _bounded(out.materialize)
    _check_parity(done.take_all(), folder_stock, yar.read_metadata(done)["names"])


@pytest.mark.timeout(120)
def test_pools_that_cannot_fit_raise_before_any_actor(local_ray, models, image_folder):
    import yolo_adapters.ray as yar

    before = _settled_map_workers()
    model = str(models["detect"])
    reads = ray.data.read_images(str(image_folder), include_paths=True)
    with pytest.raises(yar.PoolFitError, match=r"ReadImage would never get a CPU.*num_cpus=0\.5"):
        yar.predict(reads, model, concurrency=2, num_cpus=1, imgsz=IMGSZ)
    for pool in (4, (1, 3)):  # more than the cluster's CPUs, fixed or at the autoscaling max
        with pytest.raises(yar.PoolFitError, match="Ray can place 2"):
            yar.predict(str(image_folder), model, concurrency=pool, num_cpus=1, imgsz=IMGSZ)
    with pytest.raises(yar.PoolFitError, match="0 GPUs"):
        yar.predict(str(image_folder), model, num_gpus=1, imgsz=IMGSZ)
    with pytest.raises(yar.PoolFitError, match="0 NPU"):
        yar.predict(str(image_folder), model, resources={"NPU": 1}, imgsz=IMGSZ)
    assert {w.pid for w in _map_workers()} <= before, "an actor started for a pool that was refused"


def test_upstream_tasks_of_real_datasets(local_ray, image_folder, image_dataset):
    from yolo_adapters.ray import upstream_of

    reads = ray.data.read_images(str(image_folder))
    assert upstream_of(reads).cpus == 1.0 and upstream_of(reads).names == ("ReadImage",)
    mapped = ray.data.read_binary_files(str(image_folder)).map(_same_row, num_cpus=2)
    assert upstream_of(mapped).cpus == 2.0 and upstream_of(mapped).names[-1].startswith("Map")
    assert upstream_of(image_dataset).cpus == 0.0  # materialized: its rows are already there


@pytest.mark.timeout(240)
def test_a_stalled_job_ends_with_an_error_naming_the_operator(local_ray, models, image_folder):
    """An upstream map that never returns: predict's watchdog ends the job with StallError naming it, and the
    stalled task is cancelled (the CPUs come back)."""
    import yolo_adapters.ray as yar

    ds = ray.data.read_images(str(image_folder), include_paths=True).map(_sleep_forever)
    out = yar.predict(ds, str(models["detect"]), concurrency=1, imgsz=IMGSZ, stall_timeout=STALL_TIMEOUT)
    # Ray may fuse the map into the actors' operator: "Map(_sleep_forever)->MapBatches(Predictor)" is then named
    with pytest.raises(yar.StallError, match=r"Map\(_sleep_forever\)\S* stalled, 1 task in flight") as info:
        _bounded(out.take_all)
    assert "_sleep_forever" in info.value.operator and info.value.stalled_s >= STALL_TIMEOUT
    assert _free_cpus_come_back(2.0), "the stalled task still holds a CPU"


@pytest.mark.timeout(120)
def test_watchdog_acts_wherever_a_dataset_is_consumed(local_ray, tmp_path):
    """write_parquet and materialize of a watched Dataset, and of one derived from it; the Dataset it was made
    from keeps no watchdog."""
    from yolo_adapters.ray import StallError, with_stall_timeout

    plain = ray.data.range(2, override_num_blocks=1).map(_sleep_forever)
    watched = with_stall_timeout(plain, 3)
    assert plain.context.custom_execution_callback_classes == []
    with pytest.raises(StallError, match=r"Map\(_sleep_forever\)\S* stalled"):
        _bounded(lambda: watched.write_parquet(str(tmp_path / "never")), timeout=60)
    with pytest.raises(StallError, match=r"Map\(_sleep_forever\)\S* stalled"):
        _bounded(watched.map(_same_row).materialize, timeout=60)
    assert _free_cpus_come_back(2.0)
    assert sorted(r["id"] for r in with_stall_timeout(ray.data.range(3), 3).take_all()) == [0, 1, 2]


# -- a simulated two-node cluster (last: it replaces the local Ray) ----------------------------------
@pytest.fixture(scope="module")
def two_nodes(local_ray):
    """Two 1-CPU nodes on this machine, in place of the local Ray, for the rest of the module."""
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_two_node_cluster(models, stock, images, two_nodes):
    import yolo_adapters.ray as yar

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


@pytest.mark.timeout(300)
def test_two_nodes_read_images_fit_or_are_refused(models, image_folder, folder_stock, two_nodes):
    """read_images on two 1-CPU nodes: two actors, spread one per node, would leave no node a whole CPU for the
    read task at any fraction, so that pool is refused before any actor starts; the default pool (one actor)
    runs and matches stock PyTorch; a stall there ends with StallError too."""
    import yolo_adapters.ray as yar

    before = {w.pid for w in _map_workers()}
    reads = ray.data.read_images(str(image_folder), include_paths=True)
    with pytest.raises(yar.PoolFitError, match=r"ReadImage would never get a CPU.*concurrency=1.*num_cpus=0"):
        yar.predict(reads, str(models["detect"]), concurrency=2, imgsz=IMGSZ, batch_size=4)
    assert {w.pid for w in _map_workers()} <= before
    out = yar.predict(reads, str(models["detect"]), imgsz=IMGSZ, batch_size=4)
    assert _actor_cpus(out) == 1.0
    done = _bounded(out.materialize, timeout=200)
    _check_parity(done.take_all(), folder_stock, yar.read_metadata(done)["names"])

    stalled = yar.with_stall_timeout(ray.data.range(2, override_num_blocks=1).map(_sleep_forever), 3)
    with pytest.raises(yar.StallError, match=r"Map\(_sleep_forever\)\S* stalled"):
        _bounded(stalled.take_all, timeout=60)
