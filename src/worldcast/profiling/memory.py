"""Process and device memory readings for the profiler.

Peak memory is reported for the profiled run, not for the process's whole life: on Linux the
kernel's peak-RSS counter (VmHWM) is reset when profiling starts (``/proc/self/clear_refs``);
where that is not possible the peak is the highest of the readings taken after every block.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status in bytes, or None off Linux."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def current_rss() -> int:
    """Resident set size of this process now, in bytes."""
    rss = _status_bytes("VmRSS")
    if rss is not None:
        return rss
    # No /proc: the lifetime peak is the best available reading (kB on Linux, bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter at the current RSS; False where that is unsupported."""
    try:
        fd = os.open(_CLEAR_REFS, os.O_WRONLY)
    except OSError:
        return False
    try:
        os.write(fd, b"5")
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def peak_rss() -> int | None:
    """The kernel's peak RSS (since the last ``reset_peak_rss``), or None off Linux."""
    return _status_bytes("VmHWM")


def reset_device_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def device_allocated(device: torch.device) -> int | None:
    """Bytes allocated by PyTorch on an accelerator now (None on CPU: RSS covers it)."""
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else None


def device_peak(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def device_total_memory(device: torch.device) -> int:
    """Bytes of memory of ``device``: the accelerator's, or the machine's RAM for the CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
