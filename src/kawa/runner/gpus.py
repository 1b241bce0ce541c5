"""GPU discovery behind one small interface: NVML where present, recorded inventories
in tests, nothing elsewhere."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol

from kawa.protocol.nodes import GpuInfo

log = logging.getLogger(__name__)


class GpuProbe(Protocol):
    def read(self) -> list[GpuInfo]: ...


class NoGpus:
    def read(self) -> list[GpuInfo]:
        return []


class RecordedGpus:
    """GPUs from a JSON file (a list of GpuInfo objects): for tests and hollow runners."""

    def __init__(self, path: Path) -> None:
        self._gpus = [GpuInfo.model_validate(g) for g in json.loads(path.read_text())]

    def read(self) -> list[GpuInfo]:
        return list(self._gpus)


class NvmlGpus:
    """Reads GPUs through nvidia-ml-py; raises at construction when NVML is unusable."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml: Any = pynvml

    def read(self) -> list[GpuInfo]:
        nv = self._nvml
        gpus = []
        for index in range(nv.nvmlDeviceGetCount()):
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                GpuInfo(
                    index=index,
                    uuid=_text(nv.nvmlDeviceGetUUID(handle)),
                    name=_text(nv.nvmlDeviceGetName(handle)),
                    memory_total=int(mem.total),
                    memory_used=int(mem.used),
                    utilization=_maybe(
                        lambda h=handle: float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
                    ),
                    temperature=_maybe(lambda h=handle: float(nv.nvmlDeviceGetTemperature(h, 0))),
                    power_watts=_maybe(lambda h=handle: nv.nvmlDeviceGetPowerUsage(h) / 1000.0),
                )
            )
        return gpus


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _maybe(read: Any) -> float | None:
    try:
        return float(read())
    except Exception:  # a metric this GPU or driver does not support
        return None


def default_probe(recorded: Path | None = None) -> GpuProbe:
    if recorded is not None:
        return RecordedGpus(recorded)
    try:
        return NvmlGpus()
    except Exception as exc:  # no driver, no library, no device
        log.info("no NVML GPUs: %s", exc)
        return NoGpus()
