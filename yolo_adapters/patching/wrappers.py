"""The two wrappers: ``select_device`` recognises plugin device strings, ``AutoBackend`` builds our module.

Both pass straight through to Ultralytics for anything that is not a plugin route.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from ..devices import Selection, resolve


def select_device_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    device = args[0] if args else kwargs.get("device", "")
    selection = resolve(device)
    return wrapped(*args, **kwargs) if selection is None else selection


def autobackend_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    try:
        bound = inspect.signature(wrapped).bind_partial(*args, **kwargs).arguments
    except TypeError:
        return wrapped(*args, **kwargs)
    selection = bound.get("device")
    if not isinstance(selection, Selection):
        return wrapped(*args, **kwargs)
    from ..runtime import build_adapter_backend

    model = bound.get("model", bound.get("weights"))
    return build_adapter_backend(model, selection, data=bound.get("data"), batch=bound.get("batch"))


WRAPPERS: dict[str, Callable] = {"select_device": select_device_wrapper, "AutoBackend": autobackend_wrapper}
