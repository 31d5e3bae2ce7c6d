"""CPU and GPU facts: native bf16 detection from /proc/cpuinfo and torch's probes, and the bf16 setting."""

from __future__ import annotations

import pytest
from conftest import set_cpu

from textclf import hardware
from textclf.errors import ConfigError


@pytest.mark.parametrize("flags, probes, expected", [
    ({"avx2", "fma"}, (False, False), False),
    ({"avx512f", "avx512_bf16"}, (False, False), True),
    ({"amx_tile", "amx_bf16"}, (False, False), True),
    ({"avx2"}, (True, False), True),    # torch's own AVX512-BF16 probe
    ({"amx_tile"}, (False, True), False),  # AMX tiles without the bf16 instructions
    ({"amx_tile", "amx_bf16"}, (False, True), True),
])
def test_cpu_bf16_detection(monkeypatch, flags, probes, expected):
    set_cpu(monkeypatch, flags, *probes)
    assert hardware.cpu_has_native_bf16() is expected
    assert hardware.bf16_available() is expected


def test_cpu_flags_are_read_from_proc_cpuinfo(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx512_bf16 amx_tile\n"
                       "bugs\t\t: spectre_v1\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    monkeypatch.setattr(hardware, "Path", lambda _: cpuinfo)
    assert hardware._cpu_flags() == {"fpu", "sse2", "avx512_bf16", "amx_tile"}
    monkeypatch.setattr(hardware, "Path", lambda _: tmp_path / "missing")
    assert hardware._cpu_flags() == set()


def test_resolve_bf16_without_native_bf16(monkeypatch):
    set_cpu(monkeypatch, {"avx2"})
    assert hardware.resolve_bf16("auto") is False
    assert hardware.resolve_bf16("false") is False
    with pytest.raises(ConfigError, match="bf16=true"):
        hardware.resolve_bf16("true")


def test_resolve_bf16_with_native_bf16(monkeypatch):
    set_cpu(monkeypatch, {"avx512_bf16"})
    assert hardware.resolve_bf16("auto") is True
    assert hardware.resolve_bf16("true") is True
    assert hardware.resolve_bf16("false") is False
