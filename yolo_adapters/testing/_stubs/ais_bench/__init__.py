"""Stand-in for Huawei's ais_bench package (emulation only; see yolo_adapters.testing)."""

__version__ = "0.0.0+yolo_adapters.emulated"
