"""The artifact cache: converted models keyed by content, published atomically.

An entry is built in a private staging folder and renamed into place only when complete, with a
per-key file lock so two processes converting the same model do the work once. A conversion killed
half way leaves only a staging folder, which is never loaded and is removed by the next build.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from yolo_adapters.core.logs import warn_once
from yolo_adapters.core.settings import CACHE_ENV
from yolo_adapters.errors import ConversionError

LOGGER = logging.getLogger(__name__)
ENTRY_FILE = "entry.json"


def default_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "yolo_adapters"


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            return True
    except OSError:
        return False


def resolve_root(explicit: str | os.PathLike | None = None) -> Path:
    """The cache folder to use; an unwritable one falls back to a private temp folder with a warning."""
    root = Path(explicit).expanduser() if explicit else default_root()
    if _writable(root):
        return root
    fallback = Path(tempfile.gettempdir()) / f"yolo_adapters-cache-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    warn_once(
        LOGGER,
        str(root),
        "cache folder %s is not writable; using %s instead (set YOLO_ADAPTERS_CACHE "
        "or cache_dir= to a writable folder to keep conversions between sessions).",
        root,
        fallback,
    )
    if not _writable(fallback):
        raise ConversionError(
            f"Neither {root} nor {fallback} is writable; set YOLO_ADAPTERS_CACHE to a writable folder."
        )
    return fallback


def make_key(fields: Mapping[str, Any], label: str = "model") -> str:
    """A folder name: readable label plus a hash of every field that changes the artifact."""
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:20]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in label)[:40]
    return f"{safe}-{digest}"


class ArtifactCache:
    """One cache root; entries live in ``root/artifacts/KEY/`` with an ``entry.json`` written last."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = resolve_root(root)
        self.artifacts = self.root / "artifacts"
        self.locks = self.root / "locks"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.locks.mkdir(parents=True, exist_ok=True)

    def lookup(self, key: str) -> Path | None:
        """The artifact of a complete entry, or None."""
        entry = self.artifacts / key
        try:
            record = json.loads((entry / ENTRY_FILE).read_text())
        except (OSError, ValueError):
            return None
        artifact = entry / record["artifact"]
        return artifact if artifact.exists() else None

    def get_or_build(self, key: str, build: Callable[[Path], Path], fields: Mapping[str, Any] | None = None) -> Path:
        """Return the cached artifact for ``key``, building it with ``build(staging_dir)`` if needed."""
        found = self.lookup(key)
        if found is not None:
            return found
        from filelock import FileLock

        with FileLock(str(self.locks / f"{key}.lock")):
            found = self.lookup(key)  # another process may have finished while we waited
            if found is not None:
                return found
            self._remove_leftovers(key)
            staging = Path(tempfile.mkdtemp(prefix=f".staging-{key}-", dir=self.artifacts))
            try:
                artifact = Path(build(staging))
                record = {
                    "artifact": str(artifact.relative_to(staging)),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "fields": dict(fields or {}),
                }
                (staging / ENTRY_FILE).write_text(json.dumps(record, indent=1, default=str))
                os.replace(staging, self.artifacts / key)  # atomic publish
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        found = self.lookup(key)
        if found is None:
            raise ConversionError(f"cache entry {self.artifacts / key} vanished right after it was written")
        return found

    def _remove_leftovers(self, key: str) -> None:
        """Staging folders of a killed conversion, and an incomplete entry (called under the key's lock)."""
        for stale in self.artifacts.glob(f".staging-{key}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        entry = self.artifacts / key
        if entry.exists() and not (entry / ENTRY_FILE).is_file():
            shutil.rmtree(entry, ignore_errors=True)

    def clear(self) -> int:
        """Remove every complete entry. Safe while others run: each entry is moved aside under its key's lock
        (so no build is interrupted) and processes that already loaded a model keep it in memory."""
        from filelock import FileLock

        removed = 0
        for entry in list(self.artifacts.iterdir()):
            if entry.name.startswith("."):
                continue  # staging folders belong to a running build; leftovers are removed by the next one
            with FileLock(str(self.locks / f"{entry.name}.lock")):
                trash = self.artifacts / f".trash-{entry.name}-{os.getpid()}"
                try:
                    os.replace(entry, trash)
                except OSError:
                    continue
            shutil.rmtree(trash, ignore_errors=True)
            removed += 1
        return removed

    def entries(self) -> list[dict[str, Any]]:
        """Every complete entry with its key fields and size (for `yolo-adapters cache list`)."""
        found = []
        for entry in sorted(self.artifacts.iterdir()) if self.artifacts.exists() else []:
            try:
                record = json.loads((entry / ENTRY_FILE).read_text())
            except (OSError, ValueError):
                continue
            size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
            found.append({"key": entry.name, "path": str(entry), "size": size, **record})
        return found


def describe_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The key fields of an ``entries()`` item for people: model hash prefix, task, backend, shape, precision.

    The plan is stored as its repr (``ExportPlan(format='openvino', imgsz=(640, 640), batch=1, ...)``) or as a
    mapping; fields that cannot be read come back as "?"."""
    import re

    fields = dict(entry.get("fields") or {})
    plan = fields.get("plan")

    def plan_field(name: str) -> Any:
        if isinstance(plan, Mapping):
            return plan.get(name, "?")
        match = re.search(rf"\b{name}=(\([^)]*\)|\[[^\]]*\]|'[^']*'|[^,)]+)", str(plan or ""))
        return match.group(1).strip("'") if match else "?"

    imgsz = plan_field("imgsz")
    if isinstance(imgsz, (list, tuple)):
        imgsz = "x".join(str(v) for v in imgsz)
    else:
        imgsz = re.sub(r"[()\[\]\s]", "", str(imgsz)).replace(",", "x")
    dynamic = str(plan_field("dynamic"))
    return {
        "key": entry.get("key", "?"),
        "model": str(fields.get("weights", "?"))[:12],
        "task": fields.get("task") or "?",
        "backend": fields.get("backend", "?"),
        "format": plan_field("format"),
        "shape": f"{plan_field('batch')}x3x{imgsz}" + (" dynamic" if dynamic == "True" else ""),
        "precision": plan_field("precision"),
        "size": int(entry.get("size", 0)),
        "created": entry.get("created", "?"),
        "path": entry.get("path", "?"),
    }
