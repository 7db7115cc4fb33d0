"""The `slurm` provider driver (registered on import). See driver.py and docs/slurm.md."""

from workers.drivers.slurm.config import JobOptions, SlurmConfig, validate_options
from workers.drivers.slurm.driver import SlurmDriver

__all__ = ["JobOptions", "SlurmConfig", "SlurmDriver", "validate_options"]
