"""What the engine needs to know about devices: precisions, memory, cuDNN.

Facts only (no dreaming here): which precision 'auto' means on a device, how much
memory it has and has free, and the switches that make repeated shapes fast.

Apple GPUs (`mps`) are a device like CUDA's: the default where there is no NVIDIA GPU, memory from `torch.mps`,
no pinned memory (the engine pins host memory for CUDA only), and never float64 on the device (Metal has none:
the engine keeps float64 arithmetic on the host and casts before moving). bf16 is refused there (ComfyUI issues
#4165, #6254: it breaks on macOS versions that lack it).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

import torch

from .errors import DreamError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.cache
def default_device() -> str:
    """Where the command line computes unless told: an NVIDIA GPU if there is one, else an Apple GPU, else the CPU."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


GPU_TYPES = ("cuda", "mps")
"""Devices with memory of their own, sized as a GPU's (tiles, the memory check)."""


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 dot-product units (AVX512-BF16 or AMX), per /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision 'auto' stands for on `device`; other values pass through.

    bf16 on NVIDIA GPUs that have bf16 units (compute capability 8.0+: Ampere and later)
    and on CPUs that have them (bench/speed.py's engine step 1.3-1.5x faster than in
    fp32 here; dreams alike but not pixel-equal); fp16 on older CUDA GPUs, whose fp16
    units are their fast path (the loss is scaled so no gradient underflows); fp32
    elsewhere: Apple GPUs (fp16 there is a choice, not the default: it was never measured against fp32 on one),
    AMD through other backends, CPUs without bf16 units. bf16 on an Apple GPU is refused with what to use instead.
    """
    if precision == "bf16" and device.type == "mps":
        raise DreamError(
            "precision bf16 does not work on Apple GPUs (mps) on every macOS; choose fp16 (faster) or fp32 (exact), "
            "or auto (fp32 there)."
        )
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp16"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype a network computes in for `precision` ('auto' resolved) on `device`."""
    return PRECISIONS[resolve_precision(precision, device)]


@contextlib.contextmanager
def cudnn_benchmark(device: torch.device) -> Iterator[None]:
    """cuDNN picks the fastest kernels for each shape once: a dream repeats its few shapes
    (octaves, tiles, video frames) hundreds of times. The host's setting is put back after."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def free_memory(device: torch.device) -> int:
    """Bytes free for this process on `device` (CUDA: the driver's figure; Apple GPU: what Metal recommends this
    process may hold less what it holds; CPU: MemAvailable)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "mps":
        return max(int(torch.mps.recommended_max_memory()) - int(torch.mps.driver_allocated_memory()), 0)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def total_memory(device: torch.device) -> int:
    """Bytes of memory `device` has in all (CUDA: the card's; Apple GPU: what Metal recommends this process may
    hold, a share of the memory it shares with the CPU; CPU: what is free now)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[1])
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory())
    return free_memory(device)


def release_cached_memory(device: torch.device) -> None:
    """Hand the allocator's cached, unused blocks back to the device (CUDA, Apple GPU), e.g. after an out-of-memory."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
