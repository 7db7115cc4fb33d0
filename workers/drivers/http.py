"""Request signing shared by the broker, the `agent` driver and the reference agent. Pure Python (stdlib only).

Scheme v1, the same in both directions (broker -> agent calls, agent -> broker registration):

    canonical = "v1\\n" + METHOD + "\\n" + path?query + "\\n" + timestamp + "\\n" + nonce + "\\n" + key_id + "\\n"
                + hex(sha256(body))
    X-Signature = "v1=" + hex(HMAC-SHA256(secret, canonical))

with headers X-Agent-Key-Id (which secret: "<provider slug>/<agent name>"), X-Signature-Timestamp (Unix seconds),
X-Signature-Nonce (16..64 of [A-Za-z0-9_-]). The receiver refuses a timestamp more than MAX_SKEW_S away from its
clock and a nonce it has already seen within that window (it keeps nonces for at least 2 x MAX_SKEW_S).

Responses of the agent are signed too, bound to the request's nonce so that an old answer cannot be replayed:

    canonical = "v1-response\\n" + status + "\\n" + request nonce + "\\n" + timestamp + "\\n" + hex(sha256(body))
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

VERSION = "v1"
MAX_SKEW_S = 300
NONCE_TTL_S = 2 * MAX_SKEW_S
H_KEY_ID = "X-Agent-Key-Id"
H_TIMESTAMP = "X-Signature-Timestamp"
H_NONCE = "X-Signature-Nonce"
H_SIGNATURE = "X-Signature"
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class SignatureError(Exception):
    """Why a signed message was refused. `code`: missing_signature, bad_signature, stale_timestamp,
    replayed_nonce, unknown_key."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Verified:
    key_id: str
    timestamp: int
    nonce: str
    secret_index: int  # which of the offered secrets matched (0 = current, 1.. = previous ones in their grace)


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical_request(method: str, path: str, timestamp: int, nonce: str, key_id: str, body: bytes) -> bytes:
    return "\n".join((VERSION, method.upper(), path, str(timestamp), nonce, key_id, body_sha256(body))).encode()


def canonical_response(status: int, request_nonce: str, timestamp: int, body: bytes) -> bytes:
    return "\n".join((f"{VERSION}-response", str(status), request_nonce, str(timestamp), body_sha256(body))).encode()


def mac(secret: str, canonical: bytes) -> str:
    return f"{VERSION}=" + hmac.new(secret.encode(), canonical, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def sign_request(*, secret: str, key_id: str, method: str, path: str, body: bytes, now: float | None = None,
                 nonce: str | None = None) -> dict[str, str]:
    """The four signature headers for a request."""
    timestamp = int(now if now is not None else time.time())
    nonce = nonce or new_nonce()
    return {H_KEY_ID: key_id, H_TIMESTAMP: str(timestamp), H_NONCE: nonce,
            H_SIGNATURE: mac(secret, canonical_request(method, path, timestamp, nonce, key_id, body))}


def sign_response(*, secret: str, status: int, request_nonce: str, body: bytes,
                  now: float | None = None) -> dict[str, str]:
    timestamp = int(now if now is not None else time.time())
    return {H_TIMESTAMP: str(timestamp),
            H_SIGNATURE: mac(secret, canonical_response(status, request_nonce, timestamp, body))}


def _header(headers: Mapping[str, str] | Callable[[str], str | None], name: str) -> str:
    value = headers(name) if callable(headers) else headers.get(name)
    return (value or "").strip()


def parse_request(headers: Mapping[str, str] | Callable[[str], str | None]) -> tuple[str, int, str, str]:
    """(key_id, timestamp, nonce, signature) from the headers, or SignatureError(missing_signature)."""
    key_id, stamp = _header(headers, H_KEY_ID), _header(headers, H_TIMESTAMP)
    nonce, signature = _header(headers, H_NONCE), _header(headers, H_SIGNATURE)
    missing = [h for h, v in ((H_KEY_ID, key_id), (H_TIMESTAMP, stamp), (H_NONCE, nonce), (H_SIGNATURE, signature))
               if not v]
    if missing:
        raise SignatureError("missing_signature", f"unsigned request: missing {', '.join(missing)}")
    if not stamp.isdigit() or len(stamp) > 12:
        raise SignatureError("bad_signature", f"{H_TIMESTAMP} must be Unix seconds")
    if not NONCE_RE.match(nonce):
        raise SignatureError("bad_signature", f"{H_NONCE} must be 16-64 characters of A-Z a-z 0-9 _ -")
    return key_id, int(stamp), nonce, signature


def verify_request(headers: Mapping[str, str] | Callable[[str], str | None], *, method: str, path: str,
                   body: bytes, secrets_: Sequence[str], now: float | None = None,
                   max_skew_s: int = MAX_SKEW_S) -> Verified:
    """Check the signature against each secret (current first) and the timestamp window.

    Replay protection is the caller's: record `Verified.nonce` with a unique constraint and refuse a repeat."""
    key_id, timestamp, nonce, signature = parse_request(headers)
    clock = now if now is not None else time.time()
    if abs(clock - timestamp) > max_skew_s:
        raise SignatureError("stale_timestamp",
                             f"timestamp {timestamp} is {clock - timestamp:+.0f}s from now; the window is "
                             f"+/-{max_skew_s}s")
    canonical = canonical_request(method, path, timestamp, nonce, key_id, body)
    for index, secret in enumerate(secrets_):
        if secret and hmac.compare_digest(mac(secret, canonical), signature):
            return Verified(key_id=key_id, timestamp=timestamp, nonce=nonce, secret_index=index)
    raise SignatureError("bad_signature", "signature does not match")


def verify_response(headers: Mapping[str, str] | Callable[[str], str | None], *, status: int, request_nonce: str,
                    body: bytes, secret: str, now: float | None = None, max_skew_s: int = MAX_SKEW_S) -> None:
    stamp, signature = _header(headers, H_TIMESTAMP), _header(headers, H_SIGNATURE)
    if not stamp.isdigit() or not signature:
        raise SignatureError("missing_signature", "unsigned response")
    clock = now if now is not None else time.time()
    if abs(clock - int(stamp)) > max_skew_s:
        raise SignatureError("stale_timestamp", "response timestamp outside the window")
    expected = mac(secret, canonical_response(status, request_nonce, int(stamp), body))
    if not hmac.compare_digest(expected, signature):
        raise SignatureError("bad_signature", "response signature does not match")
