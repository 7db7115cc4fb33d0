"""Provider drivers: one typed interface (create, status, logs, usage, terminate), registered by name."""

from workers.drivers.base import (
    CapacityGoneError,
    Driver,
    DriverError,
    JobSpec,
    JobState,
    JobStatus,
    LogChunk,
    TerminalDriverError,
    TransientDriverError,
    Usage,
)
from workers.drivers.registry import get_driver, register_driver, registered_drivers

__all__ = [
    "CapacityGoneError", "Driver", "DriverError", "JobSpec", "JobState", "JobStatus", "LogChunk",
    "TerminalDriverError", "TransientDriverError", "Usage", "get_driver", "register_driver", "registered_drivers",
]
