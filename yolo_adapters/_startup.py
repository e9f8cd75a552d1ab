"""Interpreter start-up hook, run by ``yolo_adapters.pth`` in site-packages.

It does nothing at start-up but leave a watcher for ``import ultralytics`` (stdlib only: it runs in every Python
process, so importing wrapt or anything else heavy here would slow each of them). When Ultralytics is imported, the patch layer is
installed so plugin device strings (``device="openvino:GPU"``) work without importing yolo_adapters, and
``YOLO_ADAPTERS=openvino[:DEVICE]`` activates a backend for an unchanged script.
``YOLO_ADAPTERS_DISABLE=1`` turns all of it off.
"""

import sys

from yolo_adapters.core.settings import disabled, requested_backend


def on_ultralytics_import() -> None:
    """Install the patch layer (and the requested activation); never lets an error escape into the import."""
    try:
        request = requested_backend()
        if request:
            from yolo_adapters.integration.activation import activate

            backend, device = request
            activate(backend, **({"device": device} if device else {}))
        else:
            from yolo_adapters.integration import patching

            patching.install()
    except Exception as exc:  # fail open: a plugin must never be why `import ultralytics` fails
        import logging

        logging.getLogger(__name__).warning("startup activation failed (%s); Ultralytics runs stock.", exc)


class _UltralyticsWatcher:
    """A meta-path finder that only notices the first ``import ultralytics`` and then removes itself."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "ultralytics":
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass
            on_ultralytics_import()  # registers post-import hooks before Ultralytics' modules load
        return None  # let the normal finders import it


def arm() -> None:
    if disabled():
        return
    if "ultralytics" in sys.modules:
        on_ultralytics_import()
    elif not any(isinstance(f, _UltralyticsWatcher) for f in sys.meta_path):
        sys.meta_path.insert(0, _UltralyticsWatcher())


arm()
