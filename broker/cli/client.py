"""A small client for the broker's public JSON API (/api/v1/), on `requests`. No Django.

Errors come back in one shape, {"error": {"code", "message", "fields"}}; ApiError carries it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import requests

USER_AGENT = "brokerctl/0.1"


@dataclass
class ApiError(Exception):
    """The broker answered with an error (status >= 400), or could not be reached (status 0)."""

    status: int
    code: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


class Client:
    def __init__(self, base_url: str, token: str | None, *, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def url(self, path: str) -> str:
        """An absolute URL: paths are relative to <base>/api/v1/; full URLs (pagination links) pass through."""
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url, "api/v1/" + path.lstrip("/"))

    def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
                data: bytes | str | None = None, headers: dict[str, str] | None = None,
                raw: bool = False) -> Any:
        url = self.url(path)
        try:
            response = self.session.request(method, url, params=params, json=json, data=data, headers=headers,
                                            timeout=self.timeout)
        except requests.Timeout:
            raise ApiError(0, "timeout", f"the broker at {self.base_url} did not answer within "
                                         f"{self.timeout:g}s") from None
        except requests.ConnectionError as exc:
            raise ApiError(0, "unreachable", f"cannot reach the broker at {self.base_url}: "
                                             f"{_reason(exc)}") from None
        if response.status_code >= 400:
            raise _error(response)
        if raw:
            return response.text
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(response.status_code, "bad_response",
                           f"the broker answered {url} with something that is not JSON") from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=body, **kw)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def pages(self, path: str, *, limit: int | None = None, **params: Any):
        """Items of a list endpoint, following `next` links (page-number or cursor pages, or a bare list)."""
        page: Any = self.get(path, **params)
        seen = 0
        while True:
            items = page["results"] if isinstance(page, dict) else page
            for item in items:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield item
            next_url = page.get("next") if isinstance(page, dict) else None
            if not next_url or (limit is not None and seen >= limit):
                return
            page = self.request("GET", next_url)


def _error(response: requests.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return ApiError(response.status_code, str(error.get("code") or "error"),
                        str(error.get("message") or f"HTTP {response.status_code}"),
                        error.get("fields") or {}, body)
    return ApiError(response.status_code, f"http_{response.status_code}",
                    f"HTTP {response.status_code} {response.reason} from {response.url}", {}, {})


def _reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host",
                   "Temporary failure in name resolution", "Connection reset"):
        if marker in text:
            return marker
    return text.split(": ", 1)[-1][:200]
