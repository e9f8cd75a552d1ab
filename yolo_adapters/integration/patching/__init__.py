"""The patch layer: where Ultralytics builds its inference model, build ours instead.

See ``targets`` for what is patched in which Ultralytics version and ``wrappers`` for what the
wrappers do. Patches are module-level wrapt wrappers installed through post-import hooks (import
order does not matter), idempotent, reversible, and failing open.
"""

from yolo_adapters.integration.patching.installer import install, is_installed, is_patched, uninstall

__all__ = ["install", "is_installed", "is_patched", "uninstall"]
