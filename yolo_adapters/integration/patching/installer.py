"""Installing and removing the wrappers, with the version check and the fail-open guard."""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import threading
from types import ModuleType
from typing import Any

from yolo_adapters.core.logs import warn_once
from yolo_adapters.core.settings import disabled
from yolo_adapters.integration.patching.targets import MAX_TESTED, MIN_TESTED, TARGETS, PatchTarget, parse_version

LOGGER = logging.getLogger(__name__)
_MARK = "_self_yolo_adapters_patch"

_lock = threading.RLock()
_installed = False
_hooked: set[PatchTarget] = set()


def is_installed() -> bool:
    """Whether the patch layer is on (wrappers applied now or as soon as Ultralytics is imported)."""
    return _installed


def is_patched(module_name: str, name: str) -> bool:
    """Whether ``module_name.name`` (a global, or ``Class.method``) is currently our wrapper."""
    module = sys.modules.get(module_name)
    if module is None:
        return False
    if "." in name:
        owner, _, attr = name.partition(".")
        return getattr(vars(getattr(module, owner, object)).get(attr), _MARK, False) is True
    return getattr(getattr(module, name, None), _MARK, False) is True


def install() -> None:
    """Turn the patch layer on. Idempotent; safe before or after ``import ultralytics``."""
    global _installed
    if disabled():
        return
    import wrapt

    with _lock:
        _installed = True
        for target in TARGETS:
            if target not in _hooked:
                _hooked.add(target)
                # Fires at once if the module is already imported, else right after its import.
                wrapt.register_post_import_hook(functools.partial(_hooked_import, target), target.module)
            elif target.module in sys.modules:
                _on_import(sys.modules[target.module], target)


def _hooked_import(target: PatchTarget, module: ModuleType) -> None:
    _on_import(module, target)


def uninstall() -> None:
    """Restore every wrapped name to Ultralytics' original object."""
    global _installed
    with _lock:
        _installed = False
        for target in TARGETS:
            module = sys.modules.get(target.module)
            if module is None:
                continue
            for name in target.names:
                current: Any = getattr(module, name, None)
                if getattr(current, _MARK, False) is True:
                    setattr(module, name, current.__wrapped__)
            for qualname in target.methods:
                owner_name, _, attr = qualname.partition(".")
                owner = getattr(module, owner_name, None)
                current = vars(owner).get(attr) if owner is not None else None
                if owner is not None and getattr(current, _MARK, False) is True:
                    setattr(owner, attr, current.__wrapped__)


def _on_import(module: ModuleType, target: PatchTarget) -> None:
    """Post-import hook body. Never raises: an exception here would make ``import ultralytics`` fail."""
    with _lock:
        if not _installed:
            return
        try:
            problem = _shape_problem(module, target)
            if problem and target.optional:
                LOGGER.info("%s not patched (%s); the stock loop runs.", target.owner, problem)
                return
            if problem:
                warn_once(
                    LOGGER,
                    target.module,
                    f"Ultralytics {_ultralytics_version()} changed {target.module} ({problem}); "
                    "the adapters are off for it and stock Ultralytics runs. Upgrade yolo-adapters.",
                )
                return
            _apply(module, target)
        except Exception as exc:  # fail open
            warn_once(
                LOGGER,
                f"{target.module}:{target.owner}",
                f"could not patch {target.module} ({exc}); stock Ultralytics runs.",
            )


def _ultralytics_version() -> str:
    return str(getattr(sys.modules.get("ultralytics"), "__version__", "unknown"))


def _shape_problem(module: ModuleType, target: PatchTarget) -> str | None:
    """Why the patch no longer fits this Ultralytics, or None when it does."""
    version = parse_version(_ultralytics_version())
    if version < MIN_TESTED:
        return f"version older than {'.'.join(map(str, MIN_TESTED))} is not supported"
    owner_name, method_name = target.owner.split(".")
    owner = getattr(module, owner_name, None)
    method = getattr(owner, method_name, None)
    if method is None:
        return f"{target.owner} is missing"
    code = getattr(inspect.unwrap(method), "__code__", None)
    names = set(code.co_names) if code else set()
    for name in target.names:
        if not callable(getattr(module, name, None)):
            return f"{name} is no longer defined there"
        if name not in names:
            return f"{target.owner} no longer calls {name}"
    for qualname in target.methods:
        cls_name, _, attr = qualname.partition(".")
        if not callable(vars(getattr(module, cls_name, object)).get(attr)):
            return f"{qualname} is missing"
        if qualname != target.owner and attr not in names:
            return f"{target.owner} no longer calls {attr}"
    if version > MAX_TESTED:
        LOGGER.info(
            "Ultralytics %s is newer than the newest tested (%s); patch points still fit.",
            _ultralytics_version(),
            ".".join(map(str, MAX_TESTED)),
        )
    return None


def _apply(module: ModuleType, target: PatchTarget) -> None:
    import wrapt

    from yolo_adapters.integration.patching.wrappers import WRAPPERS

    for name in target.names:
        if getattr(getattr(module, name), _MARK, False) is True:
            continue  # idempotent
        wrapper = wrapt.FunctionWrapper(getattr(module, name), WRAPPERS[name])
        setattr(wrapper, _MARK, True)
        setattr(module, name, wrapper)
    for qualname in target.methods:
        cls_name, _, attr = qualname.partition(".")
        owner = getattr(module, cls_name)
        current = vars(owner)[attr]
        if getattr(current, _MARK, False) is True:
            continue
        wrapper = wrapt.FunctionWrapper(current, WRAPPERS[qualname])
        setattr(wrapper, _MARK, True)
        setattr(owner, attr, wrapper)
