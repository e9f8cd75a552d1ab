"""Errors users see. Each message names the fix, so nobody has to read a traceback from inside Ultralytics."""

from __future__ import annotations


class AdapterError(RuntimeError):
    """Base class for every error raised by yolo_adapters."""


class UnknownBackendError(AdapterError, ValueError):
    """A backend name or device string that no installed plugin claims."""


class BackendUnavailableError(AdapterError, ImportError):
    """The backend's engine package is not installed (or not usable) in this environment."""


class DeviceError(AdapterError, ValueError):
    """The engine does not know the requested device."""


class ModelFormatError(AdapterError, ValueError):
    """A model file that is corrupt, of the wrong kind, or does not match what was asked of it."""


class ConversionError(AdapterError):
    """Converting a checkpoint into an engine artifact failed."""


class EngineTimeoutError(AdapterError, TimeoutError):
    """An inference request that did not complete in time (a hung device or driver): an error, never a hang."""


class OptionError(AdapterError, TypeError):
    """An option with an unknown name or a value of the wrong type."""
