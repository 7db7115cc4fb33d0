"""Where brokerctl finds the broker and its token: flags > environment > config file > defaults.

Environment: BROKER_URL, BROKER_TOKEN, BROKERCTL_CONFIG (the config file's path).
Config file: $XDG_CONFIG_HOME/brokerctl/config.toml (default ~/.config/brokerctl/config.toml), written by
`brokerctl login` with mode 600:
    url = "https://broker.example.com"
    token = "..."
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Settings:
    url: str
    token: str | None
    config_path: Path
    url_source: str
    token_source: str


def config_path(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("BROKERCTL_CONFIG"):
        return Path(os.environ["BROKERCTL_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "brokerctl" / "config.toml"


def read_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"url", "token"})
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; valid: url, token")
    for key, value in data.items():
        if not isinstance(value, str):
            raise ConfigError(f"{path}: {key} must be a string")
    return data


def resolve(*, url: str | None, token: str | None, path: str | None) -> Settings:
    file_path = config_path(path)
    stored = read_file(file_path)
    if url:
        url_value, url_source = url, "--url"
    elif os.environ.get("BROKER_URL"):
        url_value, url_source = os.environ["BROKER_URL"], "BROKER_URL"
    elif stored.get("url"):
        url_value, url_source = stored["url"], str(file_path)
    else:
        url_value, url_source = DEFAULT_URL, "default"
    if token:
        token_value, token_source = token, "--token"
    elif os.environ.get("BROKER_TOKEN"):
        token_value, token_source = os.environ["BROKER_TOKEN"], "BROKER_TOKEN"
    elif stored.get("token"):
        token_value, token_source = stored["token"], str(file_path)
    else:
        token_value, token_source = None, "none"
    if not url_value.startswith(("http://", "https://")):
        raise ConfigError(f"the broker URL must start with http:// or https://, not {url_value!r} "
                          f"(from {url_source})")
    return Settings(url_value.rstrip("/"), token_value, file_path, url_source, token_source)


def write_file(path: Path, values: dict[str, str]) -> None:
    """Write the settings (only url and token; strings) with mode 600, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{key} = {_toml_string(value)}" for key, value in values.items() if value]
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
