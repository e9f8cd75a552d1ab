"""yolo_adapters.ray.serve: online inference on Ray Serve against stock PyTorch, over HTTP and a handle.

One local Ray (2 CPUs) and one Serve instance for the whole module, three applications on it: detect (two
replicas, batching with a long wait so concurrent requests share batches), pose (built by the ``serve run`` app
builder from text arguments) and segment (deployed by ``yolo-adapters serve``). The replica kill runs last.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.needs import require

ray = require("ray", extra="ray,test")
serve = require("ray.serve", extra="ray,test")

from yolo_adapters.compare.parity import DEFAULT_TOLERANCES, compare_results  # noqa: E402

IMGSZ = 320
MAX_BYTES = 1 << 20  # the detect app's limit: the test photos are well under it
REQUEST_TIMEOUT = 60.0
HEALTH_CHECK_PERIOD_S = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: bytes, content_type: str | None) -> tuple[int, dict[str, str], Any]:
    """One real HTTP request: (status, headers, decoded JSON body)."""
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as reply:
            return reply.status, dict(reply.headers), json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            payload = json.loads(text)
        except ValueError:
            payload = text.decode(errors="replace")
        return exc.code, dict(exc.headers), payload


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT) as reply:
        return json.loads(reply.read())


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models(checkpoints: dict[str, Path], pose_pt: Path) -> dict[str, Path]:
    """The run's test checkpoints (tests/conftest.py): built once, their conversions shared with the other files."""
    return {"detect": checkpoints["detect"], "segment": checkpoints["segment"], "pose": pose_pt}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, images: list[Path]) -> list[Path]:
    """bus.jpg and zidane.jpg, and each mirrored: two pairs of same-shape images with different content, so that
    same-shape requests share one engine call and a mix-up inside it shows."""
    import cv2

    out = tmp_path_factory.mktemp("serve_photos")
    found = list(images)
    for image in images:
        mirrored = out / f"{image.stem}_mirrored.jpg"
        cv2.imwrite(str(mirrored), cv2.imread(str(image))[:, ::-1])
        found.append(mirrored)
    return found


@pytest.fixture(scope="module")
def stock(models: dict[str, Path], photos: list[Path]) -> dict[str, dict[str, Any]]:
    """TASK -> {image name: stock PyTorch Results} at the test size."""
    from ultralytics import YOLO

    out: dict[str, dict[str, Any]] = {}
    for task, pt in models.items():
        model = YOLO(str(pt))
        chosen = photos if task == "detect" else photos[:2]
        out[task] = {p.name: model.predict(str(p), imgsz=IMGSZ, device="cpu", verbose=False)[0] for p in chosen}
    return out


@pytest.fixture(scope="module")
def served(models: dict[str, Path]):
    """The module's one Serve instance, its three applications, and its base URL."""
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    import yolo_adapters.ray.serve as yas
    from yolo_adapters.tools.cli import main

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = _free_port()
    # Serve notices a dead replica at its next health check: every second here instead of every ten, so the
    # replica-kill test waits for the replacement, not for the check (the deployment is otherwise the package's).
    deployment = yas.YOLODeployment
    yas.YOLODeployment = deployment.options(health_check_period_s=HEALTH_CHECK_PERIOD_S)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        detect = yas.application(
            str(models["detect"]),
            device="openvino",
            replicas=2,
            num_cpus=0.5,
            max_batch_size=4,
            batch_wait_timeout_s=0.5,
            max_bytes=MAX_BYTES,
            imgsz=IMGSZ,
        )
        # what `serve run yolo_adapters.ray.serve:app model=... num_cpus=0.5 imgsz=320` does with its arguments
        text_args = {"model": str(models["pose"]), "device": "openvino", "num_cpus": "0.5", "imgsz": str(IMGSZ)}
        pose = call_user_app_builder_with_args_if_necessary(yas.app, text_args)
        # detect's and pose's replicas start while the CLI converts and deploys segment; all three are waited for
        targets = [serve.RunTarget(detect, "detect", "/detect"), serve.RunTarget(pose, "pose", "/pose")]
        serve.run_many(targets, wait_for_applications_running=False)
        argv = ["serve", str(models["segment"]), "--device", "openvino", "--port", str(port), "--name", "segment"]
        argv += ["--route-prefix", "/segment", "--num-cpus", "0.5", "--non-blocking", "-a", f"imgsz={IMGSZ}"]
        assert main(argv) == 0
        _wait_running(("detect", "pose", "segment"))
        yield f"http://127.0.0.1:{port}"
    finally:
        yas.YOLODeployment = deployment
        serve.shutdown()
        ray.shutdown()


def _wait_running(apps: tuple[str, ...], timeout: float = 240.0) -> None:
    """Until every one of ``apps`` is RUNNING on Serve; a deploy that failed or never finished fails the fixture."""
    from ray.serve.schema import ApplicationStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = {name: serve.status().applications[name].status for name in apps}
        failed = {name: status for name, status in statuses.items() if status == ApplicationStatus.DEPLOY_FAILED}
        assert not failed, f"Serve could not deploy: {failed}"
        if all(status == ApplicationStatus.RUNNING for status in statuses.values()):
            return
        time.sleep(0.25)
    pytest.fail(f"not RUNNING after {timeout:.0f}s: {statuses}")


def _check_row(row: dict[str, Any], reference: Any, names: dict[int, str]) -> None:
    """One served row against stock PyTorch's Results for the same image, within the README tolerances."""
    import yolo_adapters.ray as yar
    from yolo_adapters.ray import _encode

    assert tuple(row) == yar.COLUMNS, "not the row schema of yolo_adapters.ray.predict"
    assert row["error"] is None and row["engine"] == "openvino:CPU"
    assert tuple(row["orig_shape"]) == tuple(reference.orig_shape)
    if reference.masks is not None:  # rows hold masks in image pixels; stock keeps them at inference size
        reference = yar.to_results(_encode.encode_result(reference, None, "torch"), names)
    agreement = compare_results(reference, yar.to_results(row, names), tol=DEFAULT_TOLERANCES)
    assert agreement.reference > 0, "stock PyTorch found nothing: the comparison would prove nothing"
    assert agreement.passed(DEFAULT_TOLERANCES), agreement.failures()


def _agrees(row: dict[str, Any], reference: Any, names: dict[int, str]) -> bool:
    import yolo_adapters.ray as yar

    return compare_results(reference, yar.to_results(row, names), tol=DEFAULT_TOLERANCES).passed(DEFAULT_TOLERANCES)


def _names(url: str) -> dict[int, str]:
    return {int(k): v for k, v in _get(url)["names"].items()}


# -- without Serve ----------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_cli_serve_options_reach_the_application(monkeypatch):
    """The command line's options arrive as ``run``'s arguments (nothing is deployed here)."""
    import yolo_adapters.ray.serve as yas
    from yolo_adapters.tools.cli import main

    seen: dict[str, Any] = {}
    monkeypatch.setattr(yas, "run", lambda model, **kw: seen.update(kw, model=model))
    argv = ["serve", "m.pt", "-d", "onnxruntime", "--port", "9000", "--replicas", "3", "--num-cpus", "2"]
    argv += ["--max-batch-size", "16", "--batch-wait-timeout", "0.05", "--max-bytes", "1000", "--no-paths"]
    assert main([*argv, "-a", "conf=0.3", "-o", "intra_op_threads=2"]) == 0
    assert seen["model"] == "m.pt" and seen["device"] == "onnxruntime" and seen["port"] == 9000
    assert (seen["replicas"], seen["num_cpus"], seen["max_batch_size"]) == (3, 2.0, 16)
    assert (seen["batch_wait_timeout_s"], seen["max_bytes"], seen["allow_paths"]) == (0.05, 1000, False)
    assert seen["conf"] == 0.3 and seen["options"] == {"intra_op_threads": 2} and seen["blocking"] is True


@pytest.mark.timeout(60)
def test_a_batch_that_could_never_fill_is_refused(models):
    import yolo_adapters.ray.serve as yas
    from yolo_adapters.errors import OptionError

    with pytest.raises(OptionError, match="never receive enough requests"):
        yas.application(str(models["detect"]), max_batch_size=8, max_ongoing_requests=4)


@pytest.mark.timeout(180)
def test_engine_failure_is_a_500_and_the_server_recovers(models, images, stock):
    """The replica's class in this process (without a batch queue: ``serve.batch`` runs only inside Serve): an
    engine that raises gives 500 (HTTP) or EngineFailure (handle) for that request only; the next one runs normally."""
    from starlette.requests import Request

    import yolo_adapters.ray as yar
    import yolo_adapters.ray.serve as yas

    engine = yar.prepare(str(models["detect"]), "openvino", imgsz=IMGSZ, ship_model=False)
    server = yas.YOLOServer(engine, max_batch_size=1, predict_args={"imgsz": IMGSZ})
    body = images[0].read_bytes()

    def http_request() -> Request:
        sent = {"done": False}

        async def receive() -> dict[str, Any]:
            if sent["done"]:
                return {"type": "http.disconnect"}
            sent["done"] = True
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-type", b"image/jpeg")]}
        return Request(scope, receive)

    async def scenario() -> tuple[Any, Any, Any, Any]:
        real = server.predictor.model.predict

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("the engine broke on purpose")

        server.predictor.model.predict = broken
        failed_http = await server(http_request())
        try:
            await server(body)
            failed_handle = None
        except yas.EngineFailure as exc:
            failed_handle = exc
        server.predictor.model.predict = real
        return failed_http, failed_handle, await server(http_request()), await server(body)

    failed_http, failed_handle, good_http, good_row = asyncio.run(scenario())
    assert failed_http.status_code == 500 and "broke on purpose" in json.loads(failed_http.body)["error"]
    assert failed_handle is not None and "broke on purpose" in str(failed_handle)
    assert good_http.status_code == 200
    for row in (yas.row_from_json(json.loads(good_http.body)), good_row):
        _check_row(row, stock["detect"][images[0].name], server.predictor.names)


# -- on Serve -----------------------------------------------------------------------------------------
@pytest.mark.timeout(240)
@pytest.mark.parametrize("task", ["detect", "pose", "segment"])
def test_http_rows_match_pytorch(served, stock, images, task):
    import yolo_adapters.ray as yar
    import yolo_adapters.ray.serve as yas

    url = f"{served}/{task}"
    info = _get(url)
    assert info["task"] == task and info["engine"] == "openvino:CPU"
    names = {int(k): v for k, v in info["names"].items()}
    for image in images:
        status, _, body = _post(url, image.read_bytes(), "image/jpeg")
        assert status == 200, body
        row = yas.row_from_json(body)
        _check_row(row, stock[task][image.name], names)
        if task == "pose":
            assert np.asarray(row["keypoints"]).shape[1:] == (17, 3)
        if task == "segment":
            masks = yar.decode_masks(row)
            assert masks.shape == (len(row["boxes"]), *row["orig_shape"]) and masks.any()
    # a file the server can read, named by path and by file:// URL: the row carries it as its path
    for payload in ({"path": str(images[1])}, {"url": images[1].resolve().as_uri()}):
        status, _, body = _post(url, json.dumps(payload).encode(), "application/json")
        assert status == 200, body
        assert body["path"] == next(iter(payload.values()))
        _check_row(yas.row_from_json(body), stock[task][images[1].name], names)


@pytest.mark.timeout(120)
def test_handle_returns_the_same_rows(served, stock, images):
    import yolo_adapters.ray.serve as yas

    handle = serve.get_app_handle("detect")
    names = _names(f"{served}/detect")
    row = handle.remote(images[0].read_bytes()).result(timeout_s=REQUEST_TIMEOUT)
    _check_row(row, stock["detect"][images[0].name], names)
    import cv2

    row = handle.remote(cv2.imread(str(images[1]))).result(timeout_s=REQUEST_TIMEOUT)  # a BGR array, as OpenCV reads
    _check_row(row, stock["detect"][images[1].name], names)
    with pytest.raises(yas.RequestError, match="cannot decode"):
        handle.remote(b"not an image").result(timeout_s=REQUEST_TIMEOUT)


@pytest.mark.timeout(180)
def test_concurrent_clients_get_their_own_results(served, stock, photos):
    """Eight clients at once, four different images (two shapes): requests share batches, and every answer is its
    own image's, not another's from the same batch."""
    url = f"{served}/detect"
    names = _names(url)
    order = [photos[i % len(photos)] for i in range(8)]
    answers: list[Any] = [None] * len(order)
    start = threading.Barrier(len(order))

    def client(i: int) -> None:
        start.wait()
        answers[i] = _post(url, order[i].read_bytes(), "image/jpeg")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(order))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(REQUEST_TIMEOUT * 2)
    assert all(a is not None for a in answers), "a client got no answer"
    import yolo_adapters.ray.serve as yas

    sizes = []
    for image, (status, headers, body) in zip(order, answers):
        assert status == 200, body
        sizes.append(int(headers["x-batch-size"]))
        row = yas.row_from_json(body)
        _check_row(row, stock["detect"][image.name], names)
        others = [
            p for p in photos if p != image and tuple(stock["detect"][p.name].orig_shape) == tuple(row["orig_shape"])
        ]
        assert others and not any(_agrees(row, stock["detect"][p.name], names) for p in others), (
            "the answer also matches another image of the same shape: a mix-up would go unseen"
        )
    assert max(sizes) > 1, f"no two requests shared a batch (batch sizes {sizes}): batching was not tested"


@pytest.mark.timeout(180)
def test_bad_requests_get_4xx_and_the_next_good_one_works(served, stock, images, tmp_path):
    url = f"{served}/detect"
    good = images[0].read_bytes()
    missing = tmp_path / "nowhere.jpg"
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" * 10)
    cases = [
        (b"\x00garbage bytes", "image/jpeg", 400, "cannot decode"),
        (good[:200], "image/jpeg", 400, "cannot decode"),  # truncated
        (b"", "image/png", 400, "empty"),
        (good, "text/plain", 415, "content type"),
        (good, None, 415, "content type"),
        (b"x" * (MAX_BYTES + 1), "image/jpeg", 413, str(MAX_BYTES)),
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b'{"file": "bus.jpg"}', "application/json", 422, "path"),
        (json.dumps({"path": str(missing)}).encode(), "application/json", 404, "no such image"),
        (json.dumps({"path": str(corrupt)}).encode(), "application/json", 400, "cannot decode"),
    ]
    for body, kind, status, message in cases:
        got, _, payload = _post(url, body, kind)
        assert got == status, (kind, body[:20], got, payload)
        assert message in payload["error"], payload
        got, _, row = _post(url, good, "image/jpeg")  # the replica that refused it still serves
        assert got == 200, row
        assert len(row["boxes"]) == len(stock["detect"][images[0].name].boxes)


def _replicas(app: str) -> list[str]:
    """Names of the live replica actors of ``app``'s YOLO deployment."""
    return sorted(
        entry["name"]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == "serve" and entry["name"].startswith(f"SERVE_REPLICA::{app}#YOLO#")
    )


@pytest.mark.timeout(240)
def test_killed_replica_is_replaced_and_only_in_flight_requests_fail(served, stock, images):
    """Four clients keep posting while one of the two replicas is killed: at most the requests in flight (one per
    client) fail, every answer given is right, Serve starts a new replica, and then every request succeeds."""
    from ray.serve.schema import ApplicationStatus

    url = f"{served}/detect"
    body = images[0].read_bytes()
    expected = len(stock["detect"][images[0].name].boxes)
    before = _replicas("detect")
    assert len(before) == 2
    stop = threading.Event()
    outcomes: list[tuple[int, int]] = []  # (status, boxes or -1)
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            try:
                status, _, payload = _post(url, body, "image/jpeg")
            except OSError:
                status, payload = -1, None
            boxes = len(payload["boxes"]) if status == 200 else -1
            with lock:
                outcomes.append((status, boxes))

    clients = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for t in clients:
        t.start()
    deadline = time.monotonic() + 60
    while len(outcomes) < 8 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(outcomes) >= 8, "the clients got no answers before the kill"
    ray.kill(ray.get_actor(before[0], namespace="serve"), no_restart=True)
    answered_at_kill = len(outcomes)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        now = _replicas("detect")
        status = serve.status().applications["detect"].status
        if len(now) == 2 and before[0] not in now and status == ApplicationStatus.RUNNING:
            break
        time.sleep(0.25)
    else:
        pytest.fail(f"the killed replica was not replaced: {_replicas('detect')}")
    time.sleep(2)
    stop.set()
    for t in clients:
        t.join(REQUEST_TIMEOUT * 2)
    failures = [o for o in outcomes if o[0] != 200]
    assert len(failures) <= len(clients), f"more failures than requests in flight: {failures}"
    assert all(boxes == expected for status, boxes in outcomes if status == 200)
    assert sum(status == 200 for status, _ in outcomes[answered_at_kill:]) >= len(clients), "no answers after the kill"
    for _ in range(6):  # both replicas, the new one included, answer every request now
        status, _, payload = _post(url, body, "image/jpeg")
        assert status == 200 and len(payload["boxes"]) == expected, payload
