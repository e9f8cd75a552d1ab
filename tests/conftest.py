"""Shared fixtures: offline settings, one conversion cache and one set of test checkpoints per run (shared by the
xdist workers), models for every task, images, the emulated Ascend toolkit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")  # nothing may download at run time
os.environ.pop("YOLO_ADAPTERS", None)
os.environ.pop("YOLO_ADAPTERS_DISABLE", None)
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # Several workers share the machine's cores: one OpenMP thread each for PyTorch (and the BLAS under NumPy), set
    # before either is imported. Their threads otherwise spin against each other's and every worker runs slower.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from tests.support.models import build_checkpoint, legacy_ultralytics, pose_weights
from tests.support.shared import built_once, run_folder

TASKS = ("detect", "segment", "pose", "obb", "classify")

#: The longest test files, longest first. pytest-xdist's loadfile hands each worker a whole file at a time, in
#: collection order once its reordering (by test count) is off: the long files start first and the short ones
#: fill in behind them, so both workers end together instead of one finishing a long file alone.
LONGEST_FILES = (
    "test_families.py",
    "test_ray.py",
    "test_quantize.py",
    "test_auto_precision.py",
    "test_serve.py",
    "test_plugin_contract.py",
    "test_pipeline.py",
    "test_reliability.py",
    "test_ascend_precision.py",
    "test_ascend_parity.py",
    "test_activation.py",
    "test_openvino.py",
    "test_onnxruntime.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """Schedule files in collection order under pytest-xdist (``pytest_collection_modifyitems`` sets it)."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``LONGEST_FILES`` first, in that order; the other files after them as collected. Tests keep their order
    within a file (some run last on purpose: Serve's replica kill, Ray's two-node cluster)."""
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One conversion cache for the whole run, every xdist worker's, so each model converts once per backend and
    options (the cache is content-keyed and locks each key: a worker wanting a conversion under way waits for it)."""
    root = run_folder(tmp_path_factory, "yolo_adapters_cache")
    os.environ["YOLO_ADAPTERS_CACHE"] = str(root)
    return root


@pytest.fixture(autouse=True)
def stock_after_each_test():
    """Every test starts as a fresh process with the package installed does: nothing activated, device
    strings routed (the startup hook's passive patch layer)."""
    import yolo_adapters
    from yolo_adapters.integration import patching

    yolo_adapters.deactivate()
    patching.install()
    yield
    yolo_adapters.deactivate()


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """TASK -> .pt path for the five tasks (pose: the real COCO weights), built once per run: every worker gets the
    same files, so their conversions share cache keys (the key hashes the weights)."""
    out = run_folder(tmp_path_factory, "checkpoints")
    return {task: built_once(out, f"{task}.pt", lambda staging, t=task: build_checkpoint(t, staging)) for task in TASKS}


@pytest.fixture(scope="session")
def family_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """(family, task) -> .pt from tests/support/family_models.py, built once per run (shared by the xdist workers
    and by every test file that needs one); skips what this Ultralytics cannot build."""
    from tests.support.family_models import FAMILIES, available, build_family_checkpoint

    built: dict[tuple[str, str], Path] = {}
    folder = run_folder(tmp_path_factory, "families")  # one build per run, whichever worker needs it first

    def get(family: str, task: str) -> Path:
        why = available(family, task)
        if why:
            pytest.skip(why)
        if (family, task) not in built:
            name = f"{Path(FAMILIES[family][task]).stem}.pt"
            built[(family, task)] = built_once(folder, name, lambda out: build_family_checkpoint(family, task, out))
        return built[(family, task)]

    return get


@pytest.fixture(scope="session")
def pose_pt(request: pytest.FixtureRequest) -> Path:
    """The real yolo11n-pose weights; on Ultralytics < 8.3 (no YOLO11) the seeded YOLOv8n-pose checkpoint."""
    if legacy_ultralytics():
        return request.getfixturevalue("checkpoints")["pose"]
    return pose_weights()


@pytest.fixture(scope="session")
def people_on_bus(pose_pt: Path, images: list[Path]) -> int:
    """What PyTorch finds on bus.jpg with ``pose_pt``: 4 people with the real weights."""
    from ultralytics import YOLO

    count = len(YOLO(str(pose_pt)).predict(str(images[0]), device="cpu", verbose=False)[0].boxes)
    assert count > 0, "the pose model finds nobody on bus.jpg: tests comparing counts would prove nothing"
    return count


@pytest.fixture(scope="session")
def images() -> list[Path]:
    from ultralytics.utils import ASSETS

    return [ASSETS / "bus.jpg", ASSETS / "zidane.jpg"]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_pose_dataset(tmp_path_factory: pytest.TempPathFactory, pose_pt: Path, images: list[Path]) -> Path:
    """A 2-image pose dataset in YOLO format, labelled with the PyTorch model's own answers."""
    import shutil

    from ultralytics import YOLO

    root = tmp_path_factory.mktemp("tiny_pose")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    model = YOLO(str(pose_pt))
    for image in images:
        shutil.copy(image, root / "images" / image.name)
        result = model.predict(str(image), device="cpu", verbose=False)[0]
        lines = []
        for box, kpts in zip(result.boxes.xywhn.tolist(), result.keypoints.data.tolist()):
            h, w = result.orig_shape
            points = " ".join(f"{x / w:.6f} {y / h:.6f} {2 if c > 0.5 else 0}" for x, y, c in kpts)
            lines.append(f"0 {' '.join(f'{v:.6f}' for v in box)} {points}")
        (root / "labels" / f"{image.stem}.txt").write_text("\n".join(lines) + "\n")
    flip = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    (root / "data.yaml").write_text(
        f"path: {root}\ntrain: images\nval: images\nnames:\n  0: person\nkpt_shape: [17, 3]\nflip_idx: {flip}\n"
    )
    return root / "data.yaml"


# -- the emulated Ascend toolkit (tests/test_ascend_*.py; helpers in tests/support/ascend.py) -----------------------
@pytest.fixture
def emu(tmp_path: Path):
    """Two emulated NPUs (310P3), current ais_bench API."""
    from yolo_adapters.testing import emulate_ascend

    with emulate_ascend(tmp_path, cards=2) as emulation:
        yield emulation


@pytest.fixture
def emu_fp32(tmp_path: Path):
    """Two emulated Ascend910B3 NPUs: precision="fp32" compiles to "origin", FP32 throughout. The compatibility
    matrix (.ci/compat) runs the parity tests on it: its seeded YOLOv8n models on old Ultralytics releases (about
    140 overlapping detections on bus.jpg) do not keep the FP16 tolerances, whose NMS then picks other boxes."""
    from yolo_adapters.testing import emulate_ascend

    with emulate_ascend(tmp_path, cards=2, chip="910B3") as emulation:
        yield emulation


@pytest.fixture(scope="session")
def square_references(checkpoints: dict[str, Path], images: list[Path]):
    """TASK -> PyTorch's results on ``images``, letterboxed square like a static .om (rect=False), computed once."""
    from ultralytics import YOLO

    cache: dict[str, list] = {}

    def get(task: str) -> list:
        if task not in cache:
            cache[task] = YOLO(str(checkpoints[task])).predict(images, rect=False, verbose=False)
        return cache[task]

    return get


@pytest.fixture
def quick_auto_timing(monkeypatch: pytest.MonkeyPatch) -> float:
    """precision='auto' times each candidate for a quarter of a second a round instead of its default: the tests
    check that every candidate is timed and that the choice follows the figures, not how steady the figures are."""
    from functools import partial

    from yolo_adapters.quantize import auto

    seconds = 0.25
    monkeypatch.setattr(auto, "for_seconds", partial(auto.for_seconds, seconds=seconds))
    return seconds
