"""Proof shared by the backend test files that a prediction ran on the engine and not on PyTorch."""

from __future__ import annotations

from pathlib import Path

import pytest


def assert_engine_ran_not_pytorch(pt: Path, image: Path, device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Convert once (that uses the PyTorch forward), then forbid PyTorch and predict again through ``device``."""
    from ultralytics import YOLO
    from ultralytics.nn.tasks import BaseModel

    model = YOLO(str(pt))
    model.predict(str(image), device=device, verbose=False)
    calls_before = model.predictor.model.engine.calls

    def refuse(*args, **kwargs):
        raise AssertionError("the PyTorch model ran")

    monkeypatch.setattr(BaseModel, "forward", refuse)
    result = model.predict(str(image), device=device, verbose=False)[0]
    assert len(result.boxes) == 4
    assert model.predictor.model.engine.calls == calls_before + 1
