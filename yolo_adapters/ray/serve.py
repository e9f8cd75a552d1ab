"""Online inference on Ray Serve: one engine per replica, the model converted once on the driver, requests batched.

    serve run yolo_adapters.ray.serve:app model=yolo11n-pose.pt device=openvino max_batch_size=8
    yolo-adapters serve yolo11n-pose.pt --device openvino --port 8000 --replicas 2

    curl -H "Content-Type: image/jpeg" --data-binary @bus.jpg http://127.0.0.1:8000/
    curl -H "Content-Type: application/json" -d '{"path": "/data/bus.jpg"}' http://127.0.0.1:8000/

    # from Python, in the same Ray cluster
    from ray import serve
    import yolo_adapters.ray.serve as yas

    serve.run(yas.application("yolo11n-pose.pt", device="openvino", imgsz=640), name="yolo")
    row = serve.get_app_handle("yolo").remote(open("bus.jpg", "rb").read()).result()

Every answer is one row of ``yolo_adapters.ray.predict``'s schema (``yolo_adapters.ray._encode``): a dict through
a handle, JSON over HTTP (binary cells, ``semantic`` and ``depth``, as base64: ``row_from_json`` turns them back).
docs/ray.md ("Serve") has the request format, the status codes and how to size replicas.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import json
import logging
import os
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
from ray import serve
from ray.serve import Application
from starlette.requests import Request
from starlette.responses import Response

from yolo_adapters.ray import _encode
from yolo_adapters.ray._predictor import Predictor, accelerator_request, prepare

__all__ = [
    "DEFAULT_MAX_BYTES",
    "EngineFailure",
    "RequestError",
    "YOLODeployment",
    "YOLOServer",
    "app",
    "application",
    "row_from_json",
    "row_to_json",
    "run",
]

LOGGER = logging.getLogger(__name__)

#: Largest request body (or image file named by a request) a replica reads: 20 MiB.
DEFAULT_MAX_BYTES = 20 * 2**20
#: Content types taken as an encoded image in the request body.
_IMAGE_TYPES = ("image/", "application/octet-stream")
#: Seconds a replica waits for an http(s) image a request names.
_URL_TIMEOUT = 10.0


class RequestError(ValueError):
    """A request the server cannot take (HTTP 4xx): not an image, too large, wrong content type, missing file."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[Any, tuple[int, str]]:  # a handle's caller gets it back through Ray
        return type(self), (self.status, str(self))


class EngineFailure(RuntimeError):
    """Inference failed on a valid image (HTTP 500); the replica stays up for the next request."""


@dataclass
class _Item:
    """One decoded request: the BGR image and the path it came from (None for bytes)."""

    image: np.ndarray
    path: str | None


# -- JSON rows ------------------------------------------------------------------------------------------
_BINARY = ("semantic", "depth")


def row_to_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as JSON-safe values: the binary cells (``semantic`` PNG, ``depth`` .npy) as base64 text."""
    out = dict(row)
    for key in _BINARY:
        if out.get(key) is not None:
            out[key] = base64.b64encode(out[key]).decode("ascii")
    return out


def row_from_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """An HTTP answer back as the row ``yolo_adapters.ray.predict`` gives (``to_results``, ``decode_masks`` take it)."""
    out = dict(row)
    for key in _BINARY:
        if isinstance(out.get(key), str):
            out[key] = base64.b64decode(out[key])
    return out


def _json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=dict(headers or {}))


# -- the replica --------------------------------------------------------------------------------------------
class YOLOServer:
    """One engine per Serve replica: HTTP requests (``starlette`` Request) and handle calls (bytes, a path or URL,
    a BGR array, or {"path": ...} / {"url": ...}) are decoded here, batched with ``@serve.batch``, and answered
    with one ``ray.predict`` row each.

    ``engine`` is what ``prepare(model, device)`` returned on the driver. ``max_batch_size`` <= 1 runs each
    request on its own (no batch queue). Images of one shape in a batch run as one engine call; other shapes run
    apart, so each answer is what that image alone gives.
    """

    def __init__(
        self,
        engine: Mapping[str, Any],
        *,
        max_batch_size: int = 8,
        batch_wait_timeout_s: float = 0.02,
        max_bytes: int = DEFAULT_MAX_BYTES,
        allow_paths: bool = True,
        threads: int | None = None,
        predict_args: Mapping[str, Any] | None = None,
    ) -> None:
        self.predictor = Predictor(engine, channels="BGR", threads=threads, predict_args=predict_args)
        self.max_bytes = int(max_bytes)
        self.allow_paths = bool(allow_paths)
        self.max_batch_size = max(int(max_batch_size), 1)
        self.batch_wait_timeout_s = float(batch_wait_timeout_s)
        self.batch_sizes: Counter[int] = Counter()
        # one engine, one thread: Ultralytics' predictor is not re-entrant; the event loop stays free meanwhile
        self._engine_thread = ThreadPoolExecutor(1, thread_name_prefix="yolo-engine")
        self._submit: Callable[[_Item], Any]
        if self.max_batch_size > 1:
            self._submit = serve.batch(
                max_batch_size=self.max_batch_size, batch_wait_timeout_s=self.batch_wait_timeout_s
            )(self._run_batch)
        else:
            self._submit = self._run_one

    # -- entry points -------------------------------------------------------------------------------
    async def __call__(self, request: Any) -> Any:
        """HTTP: POST an image (or JSON naming one) -> JSON row; GET -> ``info()``. Handle: a row dict, or raises
        RequestError / EngineFailure."""
        if isinstance(request, Request):
            return await self._http(request)
        item = await self._item_from_value(request)
        row, _ = await self._submit(item)
        if isinstance(row, BaseException):
            raise row
        return row

    def info(self) -> dict[str, Any]:
        """The model (names, task, engine), the batching options and the batch sizes run so far."""
        return {
            **self.predictor.meta,
            "names": {str(k): v for k, v in self.predictor.names.items()},
            "threads": self.predictor.threads,
            "max_batch_size": self.max_batch_size,
            "batch_wait_timeout_s": self.batch_wait_timeout_s,
            "max_bytes": self.max_bytes,
            "batches": {str(k): v for k, v in sorted(self.batch_sizes.items())},
            "pid": os.getpid(),
        }

    # -- HTTP -----------------------------------------------------------------------------------------
    async def _http(self, request: Request) -> Response:
        if request.method == "GET":
            return _json_response(self.info())
        if request.method != "POST":
            return _json_response({"error": f"{request.method} not allowed: POST an image"}, 405)
        try:
            item = await self._item_from_http(request)
        except RequestError as exc:
            return _json_response({"error": str(exc)}, exc.status)
        row, size = await self._submit(item)
        if isinstance(row, BaseException):
            return _json_response({"error": str(row)}, 500)
        return _json_response(row_to_json(row), headers={"x-batch-size": str(size)})

    async def _item_from_http(self, request: Request) -> _Item:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind.startswith(_IMAGE_TYPES):
            return await self._decode(await self._body(request), None)
        if kind == "application/json":
            try:
                payload = json.loads(await self._body(request))
            except ValueError as exc:
                raise RequestError(400, f"the body is not valid JSON: {exc}") from None
            if not isinstance(payload, dict):
                raise RequestError(400, 'JSON body must be an object: {"path": ...} or {"url": ...}')
            return await self._item_from_value(payload)
        raise RequestError(
            415,
            f"content type {kind or 'missing'!r}: send the image bytes as image/jpeg, image/png... (or "
            'application/octet-stream), or JSON {"path": ...} / {"url": ...}',
        )

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise RequestError(413, f"the body has {declared} bytes; this server takes at most {self.max_bytes}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_bytes:
                raise RequestError(413, f"the body is over {self.max_bytes} bytes, this server's limit")
            chunks.append(chunk)
        return b"".join(chunks)

    # -- decoding -------------------------------------------------------------------------------------
    async def _item_from_value(self, value: Any) -> _Item:
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            if len(data) > self.max_bytes:
                raise RequestError(413, f"the image has {len(data)} bytes; this server takes at most {self.max_bytes}")
            return await self._decode(data, None)
        if isinstance(value, np.ndarray):
            return await asyncio.to_thread(self._array, value)
        if isinstance(value, (str, os.PathLike)):
            value = {"url": str(value)} if "://" in str(value) else {"path": str(value)}
        if isinstance(value, Mapping):
            keys = [k for k in ("path", "url") if k in value]
            if len(keys) != 1 or not isinstance(value[keys[0]], str):
                raise RequestError(422, 'give exactly one of {"path": "..."} or {"url": "..."} (a string)')
            return await asyncio.to_thread(self._fetch, value[keys[0]])
        raise RequestError(
            400, f"cannot read an image from a {type(value).__name__}: send bytes, a path or URL, or a BGR array"
        )

    async def _decode(self, data: bytes, path: str | None) -> _Item:
        if not data:
            raise RequestError(400, "the request has no image: the body is empty")
        return await asyncio.to_thread(self._decode_now, data, path)

    def _decode_now(self, data: bytes, path: str | None) -> _Item:
        try:
            return _Item(self.predictor._bgr(path, data), path)
        except ValueError as exc:
            raise RequestError(400, str(exc)) from None

    def _array(self, value: np.ndarray) -> _Item:
        try:
            return _Item(self.predictor._bgr(None, value), None)
        except ValueError as exc:
            raise RequestError(400, str(exc)) from None

    def _fetch(self, source: str) -> _Item:
        """A file (path or file:// URL), an http(s) URL, or a URI pyarrow can read (s3://, gs://...)."""
        if source.startswith(("http://", "https://")):
            return self._decode_now(self._download(source), source)
        if not self.allow_paths:
            raise RequestError(403, "this server reads no files or storage URIs (allow_paths=False)")
        local = source[len("file://") :] if source.startswith("file://") else source
        if "://" not in local:
            if not os.path.isfile(local):
                raise RequestError(404, f"no such image file on the server: {local}")
            if os.path.getsize(local) > self.max_bytes:
                raise RequestError(413, f"{local} is over {self.max_bytes} bytes, this server's limit")
        try:
            return _Item(self.predictor._bgr(source, None), source)
        except (ValueError, OSError) as exc:
            raise RequestError(400, str(exc)) from None

    def _download(self, url: str) -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=_URL_TIMEOUT) as reply:
                data = reply.read(self.max_bytes + 1)
        except OSError as exc:
            raise RequestError(400, f"cannot fetch {url}: {exc}") from None
        if len(data) > self.max_bytes:
            raise RequestError(413, f"{url} is over {self.max_bytes} bytes, this server's limit")
        return data

    # -- inference ------------------------------------------------------------------------------------
    async def _run_one(self, item: _Item) -> tuple[Any, int]:
        return (await self._run_batch([item]))[0]

    async def _run_batch(self, items: list[_Item]) -> list[tuple[Any, int]]:
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(self._engine_thread, self._infer, items)
        return [(row, len(items)) for row in rows]

    def _infer(self, items: list[_Item]) -> list[Any]:
        """Rows (or EngineFailure) in the order of ``items``; each shape runs as one engine call."""
        self.batch_sizes[len(items)] += 1
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(tuple(item.image.shape), []).append(i)
        out: list[Any] = [None] * len(items)
        for indices in groups.values():
            try:
                results = self._predict([items[i].image for i in indices])
                for i, result in zip(indices, results):
                    out[i] = self._row(result, items[i])
            except Exception as exc:
                if len(indices) > 1:  # find the image that fails; the others still get their answer
                    for i in indices:
                        out[i] = self._infer_alone(items[i])
                else:
                    out[indices[0]] = self._failure(items[indices[0]], exc)
        return out

    def _infer_alone(self, item: _Item) -> Any:
        try:
            return self._row(self._predict([item.image])[0], item)
        except Exception as exc:
            return self._failure(item, exc)

    def _row(self, result: Any, item: _Item) -> dict[str, Any]:
        """Every column of ``ray.predict``'s rows, null where the task has no such output."""
        row = _encode.encode_result(result, item.path, self.predictor.engine_name)
        return {name: row.get(name) for name in _encode.COLUMNS}

    def _predict(self, images: list[np.ndarray]) -> list[Any]:
        source = images if len(images) > 1 else images[0]
        results = list(self.predictor.model.predict(source, **self.predictor.predict_args))
        if len(results) != len(images):
            raise EngineFailure(f"the engine gave {len(results)} results for {len(images)} images")
        return results

    def _failure(self, item: _Item, exc: BaseException) -> EngineFailure:
        LOGGER.warning("%s: %s: %s", item.path or "image", type(exc).__name__, exc)
        return EngineFailure(f"inference failed on {self.predictor.engine_name}: {type(exc).__name__}: {exc}")


#: The Serve deployment, named "YOLO" (``YOLODeployment.options(...).bind(engine, ...)``); ``application`` fills it in.
YOLODeployment = serve.deployment(name="YOLO")(YOLOServer)


# -- the driver -------------------------------------------------------------------------------------------
def application(
    model: Any,
    *,
    device: str = "openvino",
    replicas: int = 1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    resources: Mapping[str, float] | None = None,
    max_batch_size: int = 8,
    batch_wait_timeout_s: float = 0.02,
    max_ongoing_requests: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_paths: bool = True,
    threads: int | None = None,
    options: Mapping[str, Any] | None = None,
    ship_model: bool | str = "auto",
    autoscaling_config: Mapping[str, Any] | None = None,
    name: str = "YOLO",
    **predict_args: Any,
) -> Application:
    """A Serve application running ``model`` on ``device``: convert here, once (errors are raised here), then
    ``replicas`` replicas with one engine each; give it to ``serve.run``.

    Replicas are sized like ``yolo_adapters.ray.predict``'s actors: ``num_cpus`` (default 1, or 0.5 beside an
    accelerator) also sizes the engine's threads unless ``threads`` is given, and the engine's plugin asks for
    its accelerator (one GPU or NPU per replica) when the cluster has one and neither ``num_gpus`` nor
    ``resources`` is given. ``max_ongoing_requests`` (per replica) defaults to twice ``max_batch_size``, so one
    batch fills while the other runs; below ``max_batch_size`` a batch could never fill and it is refused.
    ``max_bytes`` caps a request's image; ``allow_paths=False`` refuses requests naming a file or storage URI
    on the server. Other keyword arguments go to Ultralytics' ``predict`` (conf, iou, imgsz, classes...).
    """
    from yolo_adapters.errors import OptionError

    if int(max_batch_size) < 1:
        raise OptionError(f"max_batch_size={max_batch_size}: give 1 (no batching) or more")
    if float(batch_wait_timeout_s) < 0:
        raise OptionError(f"batch_wait_timeout_s={batch_wait_timeout_s}: give 0 or more seconds")
    ongoing = int(max_ongoing_requests or 2 * int(max_batch_size))
    if ongoing < int(max_batch_size):
        raise OptionError(
            f"max_ongoing_requests={ongoing} < max_batch_size={max_batch_size}: a replica would never receive "
            "enough requests to fill a batch"
        )
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True)
    engine = prepare(model, device, options=options, ship_model=ship_model, imgsz=predict_args.get("imgsz"))
    if num_gpus is None and resources is None:
        num_gpus, resources = accelerator_request(engine["backend"], engine["device"], ray.cluster_resources())
    if num_cpus is None:
        num_cpus = 0.5 if (num_gpus or resources) else 1.0
    actor_options: dict[str, Any] = {"num_cpus": float(num_cpus)}
    if num_gpus:
        actor_options["num_gpus"] = float(num_gpus)
    if resources:
        actor_options["resources"] = dict(resources)
    scaling: dict[str, Any] = (
        {"autoscaling_config": dict(autoscaling_config)} if autoscaling_config else {"num_replicas": int(replicas)}
    )
    deployment = YOLODeployment.options(
        name=name, max_ongoing_requests=ongoing, ray_actor_options=actor_options, **scaling
    )
    return deployment.bind(
        engine,
        max_batch_size=int(max_batch_size),
        batch_wait_timeout_s=float(batch_wait_timeout_s),
        max_bytes=int(max_bytes),
        allow_paths=bool(allow_paths),
        threads=threads,
        predict_args=predict_args,
    )


def app(args: dict[str, Any]) -> Application:
    """The app builder of ``serve run yolo_adapters.ray.serve:app model=M device=openvino max_batch_size=8 ...``:
    every ``key=value`` is an ``application`` argument (values read as Python literals, else as text); keys it
    does not know go to Ultralytics' ``predict`` (``conf=0.3 imgsz=640``)."""
    values = {str(k): _literal(v) for k, v in dict(args).items()}
    if "model" not in values:
        raise ValueError("give the model: serve run yolo_adapters.ray.serve:app model=yolo11n.pt device=openvino")
    return application(values.pop("model"), **values)


def _literal(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def run(
    model: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    address: str | None = None,
    route_prefix: str = "/",
    name: str = "yolo",
    blocking: bool = True,
    **kwargs: Any,
) -> None:
    """Start (or join) Ray, start Serve's HTTP proxy on ``host:port``, deploy ``application(model, **kwargs)`` at
    ``route_prefix`` and, when ``blocking``, serve until interrupted, then stop what was started here."""
    started = False
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS"))
        started = True
    done = False
    try:
        serve.start(http_options={"host": host, "port": int(port)})
        serve.run(application(model, **kwargs), name=name, route_prefix=route_prefix)
        print(f"serving {model} at http://{host}:{port}{route_prefix} (Ctrl-C stops)", flush=True)
        done = not blocking
        while blocking:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if started and not done:  # interrupted or failed: stop the Ray this call started
            serve.shutdown()
            ray.shutdown()
