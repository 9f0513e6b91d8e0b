"""Schemathesis hooks for tests/schemathesis/run.

Positive test cases (data the document says is valid) must be accepted. A few rules of the API
relate several values, or a value to the clock, and JSON Schema cannot state them; these hooks
bring positive cases within them, just before they are sent, and touch nothing else (negative
cases go out as generated). Each rule is documented on its operation:

- `end_date` of a market must be in the future (POST/PUT/PATCH /api/v1/markets...);
- `offset` and `page` are not given together; sort keys appear once each (the lists);
- a new password is not one of the 10,000 most common (domain/data/common-passwords.txt), a list
  no schema carries (POST /api/v1/auth/register): a common one gets a suffix;
- `password` and `current_password` go together (PATCH /api/v1/users/me): a positive case with
  one of them gets the other (the current password is then wrong, a documented 403), and a common
  new password gets a suffix as at registration;
- an `Idempotency-Key` names one request: a key reused with another body is
  `422 idempotency_key_reused`, with the same body the first response is replayed (which may name
  a market deleted since); positive cases get a fresh key each;
- `outcome` goes with `"status": "resolved"` and only with it (PATCH /api/v1/markets/{id});
- an uploaded image is judged by its content, PNG, JPEG or WebP, which `format: binary` cannot
  say (POST /api/v1/markets/{id}/image): every generated file (bytes) is a real PNG. This is done
  at generation (`map_body`), for positive and negative cases alike (bytes stay bytes, so a
  case's validity does not change), because schemathesis cannot re-validate binary bodies.

Schemathesis re-validates a case after a hook changed it, so the checks judge what was sent.
"""

from __future__ import annotations

import datetime as dt
import itertools
import pathlib
import struct
import zlib
from collections.abc import MutableMapping

import schemathesis


def _png(width: int = 2, height: int = 2) -> bytes:
    """A small valid PNG (grey pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = _png()

COMMON_PASSWORDS = frozenset(
    (pathlib.Path(__file__).resolve().parents[2] / "domain/data/common-passwords.txt")
    .read_text(encoding="utf-8")
    .splitlines()
)

# A fresh `Idempotency-Key` per request: generated cases would otherwise reuse keys for other
# bodies (`422 idempotency_key_reused`) or be answered with the replay of an earlier request.
_KEYS = itertools.count()


def _future(value: object) -> object:
    """A date-time string that is not comfortably in the future, moved a year ahead of now."""
    if not isinstance(value, str):
        return value
    try:
        when = dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return value
    if when.tzinfo is None:
        return value
    now = dt.datetime.now(dt.timezone.utc)
    if when > now + dt.timedelta(days=1):
        return value
    return (now + dt.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _distinct_sort_keys(value: object) -> object:
    if not isinstance(value, str):
        return value
    seen: set[str] = set()
    keys = []
    for key in value.split(","):
        if key.lstrip("-") not in seen:
            seen.add(key.lstrip("-"))
            keys.append(key)
    return ",".join(keys)


@schemathesis.hook
def before_call(context, case, **kwargs):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    headers = case.headers
    if isinstance(headers, MutableMapping):
        for name in list(headers):
            if name.lower() == "idempotency-key" and isinstance(headers[name], str):
                suffix = f"-{next(_KEYS)}"
                headers[name] = headers[name][: 255 - len(suffix)] + suffix
    query = case.query
    if isinstance(query, MutableMapping):
        if "offset" in query and "page" in query:
            del query["page"]
        if "sort" in query:
            query["sort"] = _distinct_sort_keys(query["sort"])
    body = case.body
    if isinstance(body, dict) and case.operation.path == "/api/v1/auth/register":
        password = body.get("password")
        if isinstance(password, str) and password.lower() in COMMON_PASSWORDS:
            body["password"] = password[:119] + "-uncommon"
    if isinstance(body, dict) and case.operation.path == "/api/v1/users/me":
        if "current_password" in body and "password" not in body:
            body["password"] = "a fresh horse battery"
        if "password" in body and "current_password" not in body:
            body["current_password"] = "not the current password"
        password = body.get("password")
        if isinstance(password, str) and password.lower() in COMMON_PASSWORDS:
            body["password"] = password[:119] + "-uncommon"
    if isinstance(body, dict) and case.operation.path.startswith("/api/v1/markets"):
        if "end_date" in body:
            body["end_date"] = _future(body["end_date"])
        if case.operation.method.upper() == "PATCH":
            if body.get("status") == "resolved":
                body.setdefault("outcome", "yes")
            elif "outcome" in body:
                del body["outcome"]
                if not body:
                    body["category"] = "weather"


@schemathesis.hook
def map_body(context, body):
    if context.operation is None or context.operation.path != "/api/v1/markets/{id}/image":
        return body
    if isinstance(body, dict) and isinstance(body.get("image"), (bytes, bytearray, str)):
        return {**body, "image": PNG}
    return body
