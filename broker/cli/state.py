"""The options every command shares (URL, token, timeout, --json) and the exit codes."""

from __future__ import annotations

from dataclasses import dataclass

from broker.cli.client import Client
from broker.cli.config import Settings, resolve

EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_ORDER_UNSUCCESSFUL = 3


@dataclass
class State:
    url: str | None
    token: str | None
    config: str | None
    timeout: float
    json: bool
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = resolve(url=self.url, token=self.token, path=self.config)
        return self._settings

    def client(self) -> Client:
        return Client(self.settings.url, self.settings.token, timeout=self.timeout)
