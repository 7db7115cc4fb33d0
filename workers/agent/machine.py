"""Facts about the machine the agent runs on (what it registers with the broker). Stdlib only."""

from __future__ import annotations

import os
import platform
import shutil
import socket
from pathlib import Path
from typing import Any


def machine_facts(work_dir: Path) -> dict[str, Any]:
    pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    page_size = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
    work_dir.mkdir(parents=True, exist_ok=True)
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "vcpus": os.cpu_count() or 1,
        "ram_gb": round(pages * page_size / 2**30, 1),
        "disk_gb": round(shutil.disk_usage(work_dir).total / 2**30, 1),
        "disk_free_gb": round(shutil.disk_usage(work_dir).free / 2**30, 1),
        "accelerators_detected": 0,  # the reference agent runs plain processes; it does not probe GPUs
    }
