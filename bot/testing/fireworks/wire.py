"""The fake's wire format: google.rpc-style errors, pages, recorded requests, fault settings."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .world import (
    JSON,
)

VALID_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
GRPC = {  # google.rpc code name -> (HTTP status, numeric code), as grpc-gateway maps them
    "INVALID_ARGUMENT": (400, 3),
    "FAILED_PRECONDITION": (400, 9),
    "UNAUTHENTICATED": (401, 16),
    "PERMISSION_DENIED": (403, 7),
    "NOT_FOUND": (404, 5),
    "ALREADY_EXISTS": (409, 6),
    "RESOURCE_EXHAUSTED": (429, 8),
    "INTERNAL": (500, 13),
    "UNAVAILABLE": (503, 14),
}
VALID_RANKS = {4, 8, 16, 32, 64}
Responder = Callable[[str, list[JSON]], str]


@dataclass
class Faults:
    """Fault injection, drawn per request from the server's seeded RNG. Assign a new one any time.

    Draws are keyed by the request (method, path, query, body, occurrence), not by arrival
    order, so a given seed injects the same faults on every run even with concurrent clients.
    """

    error_rate: float = 0.0  # share of requests answered with one of ``statuses``
    statuses: tuple[int, ...] = (500, 429)
    drop_rate: float = 0.0  # share of requests whose connection is dropped without a response
    slow_rate: float = 0.0  # share of requests delayed by ``slow_seconds`` first
    slow_seconds: float = 0.0
    after_commit: float = 0.5  # share of errors/drops that hit after the request took effect
    retry_after_ms: int | None = 20  # sent with injected errors (plus ``retry-after: 1`` on 429)
    scope: str = "/v1/"  # path prefix the faults apply to (signed URLs are outside by default)
    limit: int | None = None  # stop after injecting this many errors/drops
    injected: int = 0


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    json: Any
    time: float  # fake clock
    status: int | None = None  # what the handler answered (None when it never ran)
    fault: str | None = None  # "error", "drop" or "slow" when one was injected
    after_commit: bool = False
    authorized: bool = False


@dataclass
class Ctx:
    request: web.Request
    groups: tuple[str, ...]
    query: dict[str, str]
    body: Any
    now: float


def rpc_error(code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    status, num = GRPC[code]
    return web.json_response({"code": num, "message": message, "details": []}, status=status, headers=headers)


def page(items: list[JSON], key: str, query: dict[str, str], max_page: int) -> web.Response:
    size = min(int(query.get("pageSize") or 50), max_page)
    start = int(query.get("pageToken") or 0)
    out: JSON = {key: items[start : start + size], "totalSize": len(items)}
    if start + size < len(items):
        out["nextPageToken"] = str(start + size)
    return web.json_response(out)


def echo(model: str, messages: list[JSON]) -> str:
    """Deterministic answer: echo the last user message."""
    last = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), {})
    content = last.get("content", "")
    if isinstance(content, list):
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return f"echo: {content}"
