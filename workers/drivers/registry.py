"""Drivers registered by name. Each offer names its driver (Offer.driver); configuration comes from the caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workers.drivers.base import Driver, TerminalDriverError

DriverFactory = Callable[..., Driver]
_REGISTRY: dict[str, DriverFactory] = {}


def register_driver(name: str) -> Callable[[DriverFactory], DriverFactory]:
    def decorate(factory: DriverFactory) -> DriverFactory:
        _REGISTRY[name] = factory
        return factory

    return decorate


def registered_drivers() -> tuple[str, ...]:
    _load_builtin()
    return tuple(sorted(_REGISTRY))


def get_driver(name: str, **config: Any) -> Driver:
    """A driver instance. `config` is driver-specific (agent URL and secret, Slurm host, simulated knobs)."""
    _load_builtin()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise TerminalDriverError(f"unknown driver '{name}'; known: {', '.join(sorted(_REGISTRY))}",
                                  code="unknown_driver") from None
    return factory(**config)


def _load_builtin() -> None:
    """Import the built-in driver modules so their @register_driver decorators run (each is optional)."""
    import importlib

    for module in ("workers.drivers.simulated", "workers.drivers.agent", "workers.drivers.slurm"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
