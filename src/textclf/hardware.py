"""What the machine can do: native bf16 support, used to pick the training/inference dtype."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from textclf.errors import ConfigError

# CPU flags that give bf16 matmuls in hardware: AVX512-BF16 (Cooper Lake+) and AMX-BF16 (Sapphire Rapids+).
# Without them oneDNN emulates bf16 and autocast is slower than fp32 (PyTorch CPU autocast docs).
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 matmuls natively (AVX512-BF16 or AMX-BF16)."""
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    if probe is not None and probe():
        return True
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if amx is not None and amx() and "amx_bf16" in _cpu_flags():
        return True
    return bool(_cpu_flags() & set(_BF16_FLAGS))


def bf16_available() -> bool:
    """True when bf16 autocast pays off here: a CUDA GPU with bf16, or a CPU with native bf16."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_native_bf16()


def resolve_bf16(setting: str) -> bool:
    """Resolve a recipe's ``bf16`` setting ("auto", "true", "false") to a bool.

    Raises:
        ConfigError: "true" was asked for on a machine without native bf16 (the fix: bf16=auto or false).
    """
    if setting == "auto":
        return bf16_available()
    if setting == "true" and not bf16_available():
        raise ConfigError("bf16=true but this machine has no native bf16 (needs AVX512-BF16/AMX or a bf16 GPU): "
                         "use bf16=auto or bf16=false")
    return setting == "true"


def describe_machine() -> str:
    """One line naming the device a run used: the GPU, or the CPU model with its core count and bf16 support."""
    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = torch.get_num_threads()
    return f"CPU {model or 'unknown'}, {cores} threads, native bf16 {'yes' if cpu_has_native_bf16() else 'no'}"


def matmul_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 2.0) -> float:
    """Measured FLOP/s of repeated (n x n) @ (n x n) products in ``dtype`` on all CPU threads (2 n^3 FLOPs each):
    the machine's practical matmul peak, which the benchmarks compare their achieved FLOP/s against."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        runs += 1
    return 2 * n**3 * runs / (time.perf_counter() - started)
