"""The local platform's OpenAI-compatible endpoint: ``/v1/chat/completions`` (streamed or
not), ``/v1/models``, on aiohttp inside the sftbot process that hosts it.

It answers only its clients: it binds 127.0.0.1, refuses a Host header that is not a
loopback name or a configured one (a web page that rebinds its own name to 127.0.0.1 sends
its own name), refuses an ``Origin`` of another site, accepts POSTs only as
``application/json`` (a cross-site form or ``text/plain`` "simple request" needs no CORS
preflight; JSON does, and nothing here answers one), and checks SFTBOT_LOCAL_API_KEY when
set. Work is bounded: ``max_tokens`` is capped, generation stops when the client leaves or
the server stops, requests take turns one decoding step at a time (``generate.Turns``),
and at most ``max_active`` run at once; one more waits ``wait_seconds`` for a place, then
gets 503 with Retry-After.

Why our own server and not ``transformers serve`` (the first candidate; tried at 5.25.0 with
the ``serving`` extra, on CPU, offline, on a run's merged export): it cannot load a LoRA
adapter folder ("Unrecognized model … Should have a `model_type` key"), so every deployment
would need a merged copy on disk; it ignores ``n`` ("Ignoring unsupported fields: {'n'}") and
accepts ``temperature=-3``; errors are ``{"detail": …}`` and an unknown model is a 400; it
has no Host or Origin check (``Host: evil.example`` answered 200), no API key and no
``max_tokens`` cap (100000 accepted); its stream ends without ``data: [DONE]``; requests
queue without bound, never a 503; on SIGTERM mid-generation uvicorn "waits for connections
to close" (still generating 40 s later); and it names models by path, one process per
model. Its cancel-on-disconnect worked. Wrapping it would mean rewriting its requests,
answers and event streams; this server is smaller than that wrapper. Generation itself is
transformers' ``generate`` (generate.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from pipeline.platforms.local.generate import Generation, Sampling, Turns
from pipeline.platforms.local.serve import LoadedModel
from pipeline.platforms.local.wire import (
    ChatCompletionRequest,
    EndpointError,
    chunk_body,
    completion_body,
    completion_id,
    model_body,
    parse_request,
)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")

# The deployment a request names, or LookupError whose message says why not (a 404).
Resolver = Callable[[str], Awaitable[LoadedModel]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class EndpointConfig:
    """Who may call the endpoint, what it accepts and how long a request may wait (the bot fills it from settings)."""

    api_key: str | None = field(default=None, repr=False)  # SFTBOT_LOCAL_API_KEY: required when set
    allowed_hosts: tuple[str, ...] = ()  # Host names accepted besides the loopback ones
    max_tokens: int = 4096  # the cap on max_tokens, said in the 400
    default_max_tokens: int = 256  # when a request gives none
    max_active: int = 4  # generations taking turns at once
    wait_seconds: float = 10.0  # the longest a request waits for a place before a 503


class ChatServer:
    """One HTTP server for every local deployment; the request's ``model`` picks the deployment."""

    def __init__(
        self,
        resolve: Resolver,
        list_ids: Callable[[], list[str]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        config: EndpointConfig | None = None,
    ) -> None:
        self._resolve, self._list_ids = resolve, list_ids
        self.host, self.port = host, port
        self.config = config or EndpointConfig()
        self._api_key = self.config.api_key
        self._hosts = frozenset(h.lower() for h in (*LOOPBACK_NAMES, *self.config.allowed_hosts))
        self.turns = Turns()
        self.active: set[Generation] = set()  # what generates now (tests watch its token counters)
        self._places: asyncio.Semaphore | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> int:
        """Bind (port 0 picks a free one) and return the port actually used."""
        if self._runner is not None:
            return self.port
        app = web.Application(middlewares=[self._guard])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{name}", self._model)
        # handler_cancellation: a client that disconnects cancels its handler, which cancels its
        # generation (off by default: https://docs.aiohttp.org/en/stable/web_advanced.html#web-handler-cancellation).
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0)
        await runner.setup()
        # Bind the socket ourselves so port 0 (tests) reports the port the OS picked.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            await runner.cleanup()
            raise
        self.port = int(sock.getsockname()[1])
        await web.SockSite(runner, sock).start()
        self._places = asyncio.Semaphore(self.config.max_active)
        self._runner, self._stopping = runner, False
        return self.port

    async def stop(self) -> None:
        """Cancel what generates (each ends at its next token; its client gets an error event or a
        503) and release the port; a request still waiting for a place is dropped with its
        connection after aiohttp's short shutdown wait (2 s)."""
        self._stopping = True
        for gen in list(self.active):
            gen.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- who may call ---

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            self._check_caller(request)
            return await handler(request)
        except EndpointError as exc:
            return _error(exc)
        except web.HTTPException as exc:  # the router's 404/405, a body over the size limit
            if exc.status < 400:
                raise
            return _error(EndpointError(exc.status, f"{exc.reason}: {request.method} {request.path}", code=str(exc.status)))

    def _check_caller(self, request: web.Request) -> None:
        host = request.headers.get("Host")
        if not _host_in(host, self._hosts):
            raise EndpointError(
                421,
                f"this endpoint answers only requests addressed to 127.0.0.1 or localhost, not {host!r} "
                "(add the name to SFTBOT_LOCAL_ALLOWED_HOSTS if it is yours)",
                code="host_not_allowed",
            )
        origin = request.headers.get("Origin")
        if origin is not None and not _host_in(_authority(origin), self._hosts):
            raise EndpointError(
                403, f"requests from web pages of other sites are refused (Origin {origin!r})", code="origin_not_allowed"
            )
        if self._api_key is not None:
            presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(presented.encode(), self._api_key.encode()):
                raise EndpointError(401, "invalid API key: send the key set in SFTBOT_LOCAL_API_KEY", code="invalid_api_key")
        if request.method == "POST" and request.content_type != "application/json":
            raise EndpointError(
                415,
                f"send the body as JSON with 'Content-Type: application/json' (got {request.content_type!r})",
                code="unsupported_media_type",
            )

    # --- models ---

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [model_body(i) for i in self._list_ids()]})

    async def _model(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._list_ids():
            raise EndpointError(
                404,
                f"The model {name!r} does not exist here; GET /v1/models lists what is served",
                param="model",
                code="model_not_found",
            )
        return web.json_response(model_body(name))

    # --- chat completions ---

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError as exc:
            raise EndpointError(400, f"the body is not valid JSON: {exc}") from None
        req = parse_request(body)
        sampling = self._sampling(req)
        try:
            loaded = await self._resolve(req.model)
        except LookupError as exc:
            raise EndpointError(404, str(exc), param="model", code="model_not_found") from None
        prompt = await asyncio.to_thread(_encode, loaded, req)
        async with self._place():
            gen = Generation(loaded, prompt, sampling, self.turns)
            self.active.add(gen)
            try:
                if req.stream:
                    return await self._stream(request, req, gen)
                return await self._complete(req, gen)
            finally:
                self.active.discard(gen)

    def _sampling(self, req: ChatCompletionRequest) -> Sampling:
        cap = self.config.max_tokens
        asked, param = (
            (req.max_completion_tokens, "max_completion_tokens") if req.max_completion_tokens else (req.max_tokens, "max_tokens")
        )
        if asked is not None and asked > cap:
            raise EndpointError(
                400,
                f"{param} is {asked}, above this endpoint's cap of {cap} tokens (SFTBOT_LOCAL_MAX_TOKENS); ask for at most {cap}",
                param=param,
            )
        tokens = asked or min(self.config.default_max_tokens, cap)
        return Sampling(max_tokens=tokens, temperature=req.temperature, top_p=req.top_p, n=req.n, stop=req.stops)

    @contextlib.asynccontextmanager
    async def _place(self) -> AsyncIterator[None]:
        """One of ``max_active`` places, waited for at most ``wait_seconds``; else a 503 saying when to retry."""
        assert self._places is not None
        wait = self.config.wait_seconds
        if self._stopping:
            raise EndpointError(503, "the endpoint is stopping", kind="server_error", code="stopping")
        try:
            await asyncio.wait_for(self._places.acquire(), wait)
        except TimeoutError:
            raise EndpointError(
                503,
                f"the local endpoint is busy: {self.config.max_active} requests are generating; retry in {math.ceil(wait)} s",
                kind="server_error",
                code="overloaded",
                headers={"Retry-After": str(math.ceil(wait))},
            ) from None
        try:
            yield
        finally:
            self._places.release()

    async def _complete(self, req: ChatCompletionRequest, gen: Generation) -> web.Response:
        texts, reasons = [""] * req.n, ["length"] * req.n
        try:
            async for deltas in gen.stream():
                for d in deltas:
                    texts[d.choice] += d.text
                    reasons[d.choice] = d.finish_reason or reasons[d.choice]
        except Exception as exc:
            raise EndpointError(500, f"generation failed: {type(exc).__name__}: {exc}", kind="server_error") from None
        if self._stopping:
            raise EndpointError(503, "the endpoint stopped before the answer was complete", kind="server_error", code="stopping")
        usage = (len(gen.prompt), gen.completion_tokens)
        return web.json_response(completion_body(completion_id(), req.model, list(zip(texts, reasons, strict=True)), usage))

    async def _stream(self, request: web.Request, req: ChatCompletionRequest, gen: Generation) -> web.StreamResponse:
        """Server-sent events: a role chunk, text chunks, finish reasons, usage if asked, ``[DONE]``."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        cid, created = completion_id(), int(time.time())
        first = [{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None} for i in range(req.n)]
        await _event(resp, chunk_body(cid, req.model, created, first))
        try:
            async for deltas in gen.stream():
                choices = [
                    {"index": d.choice, "delta": {"content": d.text} if d.text else {}, "finish_reason": d.finish_reason}
                    for d in deltas
                ]
                await _event(resp, chunk_body(cid, req.model, created, choices))
        except ConnectionError:  # the client left between two chunks; leaving the loop cancelled its generation
            return resp
        except Exception as exc:  # after the 200 has gone out, an error is an event (as OpenAI sends it)
            await _event(resp, EndpointError(500, f"generation failed: {type(exc).__name__}: {exc}", kind="server_error").body())
            return resp
        if self._stopping:
            await _event(
                resp, EndpointError(503, "the endpoint stopped before the answer was complete", kind="server_error").body()
            )
            return resp
        if req.stream_options is not None and req.stream_options.include_usage:
            await _event(resp, chunk_body(cid, req.model, created, [], usage=(len(gen.prompt), gen.completion_tokens)))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def _encode(loaded: LoadedModel, req: ChatCompletionRequest) -> list[int]:
    """The prompt's token ids through the model's chat template, refused past its context."""
    try:
        ids = loaded.tokenizer.apply_chat_template(
            [m.model_dump(include={"role", "content"}) for m in req.chat()], add_generation_prompt=True, return_dict=True
        )["input_ids"]
    except Exception as exc:  # the template's own rules (role order, a missing system turn)
        raise EndpointError(400, f"the model's chat template refused these messages: {exc}", param="messages") from None
    context = getattr(loaded.model.config, "max_position_embeddings", None)
    if context is not None and len(ids) > context:
        raise EndpointError(
            400,
            f"This model's maximum context length is {context} tokens. However, your messages resulted in {len(ids)} tokens.",
            param="messages",
            code="context_length_exceeded",
        )
    return [int(i) for i in ids]


def _host_in(authority: str | None, names: frozenset[str]) -> bool:
    """Whether a Host header (or an Origin's authority) names one of ``names``, with any port."""
    if not authority:
        return False
    value = authority.strip().lower()
    if value.startswith("["):  # [::1]:8765
        name = value[1 : value.find("]")] if "]" in value else ""
    else:
        name = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return name in names


def _authority(origin: str) -> str | None:
    """``host:port`` of an Origin header; None for ``null`` (sandboxed frames, files) or garbage."""
    try:
        return urlsplit(origin).netloc or None
    except ValueError:
        return None


def _error(exc: EndpointError) -> web.Response:
    return web.json_response(exc.body(), status=exc.status, headers=exc.headers)


async def _event(resp: web.StreamResponse, body: dict[str, Any]) -> None:
    await resp.write(f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode())
