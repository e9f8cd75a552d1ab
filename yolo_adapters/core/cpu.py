"""What the host CPU is: its name and best x86 instruction-set level, read without any engine package.

Engines choose recipes by it (OpenVINO's INT8 placement depends on VNNI) and ``yolo-adapters bench`` prints it in
its machine line, so it lives below every engine.
"""

from __future__ import annotations

import platform

#: x86 instruction-set levels, best first, each with the /proc/cpuinfo flag that marks it. VNNI (and AMX) multiply
#: u8 x s8 into 32-bit sums; without it (AVX2, AVX-512 before Cascade Lake) oneDNN's int8 kernels add pairs of
#: products in 16 bits, which saturate (NNCF's "overflow issue"): the INT8 recipe is chosen by this.
ISA_LEVELS = (
    ("amx", "amx_int8"),
    ("avx512_vnni", "avx512_vnni"),
    ("avx_vnni", "avx_vnni"),
    ("avx512", "avx512bw"),
    ("avx2", "avx2"),
    ("sse4", "sse4_2"),
)
#: numpy's CPU feature names for the same levels: where there is no /proc/cpuinfo (Windows, macOS).
_NUMPY_FEATURES = (
    ("amx", "AVX512_SPR"),
    ("avx512_vnni", "AVX512_CLX"),
    ("avx512", "AVX512_SKX"),
    ("avx2", "AVX2"),
    ("sse4", "SSE42"),
)


def _cpuinfo_field(name: str) -> str | None:
    """The first ``name : value`` line of /proc/cpuinfo (Linux); None where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, sep, value = line.partition(":")
                if sep and key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where it cannot be read."""
    return set((_cpuinfo_field("flags") or "").split())


def cpu_isa(flags: set[str] | None = None) -> str:
    """The best ISA level of this CPU (``ISA_LEVELS``): from /proc/cpuinfo, else from numpy's CPU dispatch
    features; "unknown" when neither tells."""
    flags = cpu_flags() if flags is None else flags
    if flags:
        return next((name for name, flag in ISA_LEVELS if flag in flags), "unknown")
    import importlib

    features: dict[str, bool] = {}
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy >= 2, numpy 1.x
        try:
            features = getattr(importlib.import_module(module), "__cpu_features__", {})
            break
        except ImportError:
            continue
    else:
        return "unknown"
    return next((name for name, key in _NUMPY_FEATURES if features.get(key)), "unknown")


def cpu_name() -> str:
    """The CPU's marketing name ("Intel(R) Xeon(R) ..."): /proc/cpuinfo's model name, else what ``platform`` says."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown CPU"
