"""Which files are images: Ultralytics' own list, so every folder reader here takes what ``predict`` would."""

from __future__ import annotations

from collections.abc import Iterator, Set
from pathlib import Path


class _UltralyticsImageSuffixes(Set[str]):
    """``.jpg``, ``.png``... from ``ultralytics.data.utils.IMG_FORMATS``, read on first use.

    Lazy because importing Ultralytics takes seconds and this module is imported by modules that run without it
    until an image is actually looked for.
    """

    _suffixes: frozenset[str] | None = None

    def _get(self) -> frozenset[str]:
        if self._suffixes is None:
            from ultralytics.data.utils import IMG_FORMATS

            self._suffixes = frozenset(f".{str(s).lower().lstrip('.')}" for s in IMG_FORMATS)
        return self._suffixes

    def __contains__(self, suffix: object) -> bool:
        return isinstance(suffix, str) and suffix.lower() in self._get()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._get()))

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return f"IMAGE_SUFFIXES({', '.join(self)})"


#: File suffixes (lower case, with the dot) of the images Ultralytics reads; ``".JPG" in IMAGE_SUFFIXES`` is True.
IMAGE_SUFFIXES: Set[str] = _UltralyticsImageSuffixes()


def is_image(path: str | Path) -> bool:
    """Whether ``path``'s suffix is an image format Ultralytics reads (the file itself is not opened)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES
