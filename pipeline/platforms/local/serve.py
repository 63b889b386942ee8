"""Serving for the local platform: load (base + merged adapter), batched greedy generation,
and an OpenAI-compatible ``/v1/chat/completions`` endpoint on aiohttp.

The endpoint runs inside the bot's event loop; generation runs in a worker thread
(``asyncio.to_thread``) so Slack handling is never blocked by a forward pass.

Why our own small server and not a well-kept one (checked against transformers 5.24):
``transformers serve`` is a uvicorn/FastAPI app in its own thread and loop that loads models
by the name in each request (one forced model at most), has no API-key check and no LoRA
adapters, and needs the ``transformers[serving]`` extra; here one endpoint must answer for
every deployment of a root inside the bot's loop, load each lazily from its record, refuse
torn-down ones, and check SFTBOT_LOCAL_API_KEY. vLLM needs a CUDA GPU. Both are the right
tools for an *exported* model (``sftbot export RUN --format merged``: ``vllm serve <dir>`` or
``transformers serve <dir>``), which the report says; this server is what answers before that.
"""

from __future__ import annotations

import asyncio
import hmac
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from pipeline.domain.platform import ChatMessage


@dataclass
class LoadedModel:
    """A model ready to generate; ``lock`` serialises forward passes (they use every core anyway)."""

    name: str
    model: Any
    tokenizer: Any
    device: str
    lock: threading.Lock = field(default_factory=threading.Lock)


class Generation(BaseModel):
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length", as OpenAI reports it


def load_model(name: str, base_folder: Path, adapter: Path | None, device: str) -> LoadedModel:
    """Base weights in fp32, the LoRA adapter merged in (generation never sees a PEFT wrapper)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see train: spinning threads stall on a shared CPU
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_folder))
    model: Any = AutoModelForCausalLM.from_pretrained(str(base_folder), dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.to(device).eval()
    return LoadedModel(name=name, model=model, tokenizer=tokenizer, device=device)


def _stop_ids(loaded: LoadedModel) -> list[int]:
    ids = {loaded.tokenizer.eos_token_id}
    configured = getattr(loaded.model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


def generate_batch(
    loaded: LoadedModel, prompts: Sequence[Sequence[ChatMessage]], *, max_tokens: int, batch_size: int = 16
) -> list[Generation]:
    """Greedy completions, batched with left padding (prompts sorted by length to pad little)."""
    import torch

    tok = loaded.tokenizer
    encoded = [
        list(tok.apply_chat_template([m.model_dump() for m in p], add_generation_prompt=True, return_dict=True)["input_ids"])
        for p in prompts
    ]
    stops = _stop_ids(loaded)
    pad = tok.pad_token_id if tok.pad_token_id is not None else stops[0]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    results: list[Generation | None] = [None] * len(encoded)
    with loaded.lock, torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attn = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                n = len(encoded[i])
                ids[row, width - n :] = torch.tensor(encoded[i])
                attn[row, width - n :] = 1
            out = loaded.model.generate(
                input_ids=ids.to(loaded.device),
                attention_mask=attn.to(loaded.device),
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=stops,
            )
            for row, i in enumerate(chunk):
                new = out[row, width:].tolist()
                cut = next((k for k, t in enumerate(new) if t in stops), None)
                kept = new if cut is None else new[:cut]
                results[i] = Generation(
                    text=tok.decode(kept, skip_special_tokens=True).strip(),
                    prompt_tokens=len(encoded[i]),
                    completion_tokens=len(kept) + (0 if cut is None else 1),
                    finish_reason="length" if cut is None else "stop",
                )
    return [r for r in results if r is not None]


# --- the OpenAI-compatible endpoint ---


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's chat-completions request this endpoint honours (decoding is greedy)."""

    model: str
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stream: bool = False


# The deployment a request names, or LookupError whose message says why not (a 404).
Resolver = Callable[[str], Awaitable[LoadedModel]]


def _error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "code": status}}, status=status)


class ChatServer:
    """One HTTP server for every local deployment; the request's ``model`` picks the deployment."""

    def __init__(
        self,
        resolve: Resolver,
        list_ids: Callable[[], list[str]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default_max_tokens: int = 256,
        api_key: str | None = None,
    ) -> None:
        self._resolve, self._list_ids = resolve, list_ids
        self.host, self.port = host, port
        self._default_max = default_max_tokens
        self._api_key = api_key
        self._runner: web.AppRunner | None = None

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> int:
        """Bind (port 0 picks a free one) and return the port actually used."""
        if self._runner is not None:
            return self.port
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        runner = web.AppRunner(app, access_log=None)
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
        self._runner = runner
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """With SFTBOT_LOCAL_API_KEY set, every request must carry it (other users of the machine can reach 127.0.0.1)."""
        if self._api_key is not None:
            presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(presented.encode(), self._api_key.encode()):
                return _error(401, "invalid API key: send the key set in SFTBOT_LOCAL_API_KEY", "authentication_error")
        return await handler(request)

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": i, "object": "model", "owned_by": "local"} for i in self._list_ids()]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.Response:
        try:
            body = ChatCompletionRequest.model_validate(await request.json())
        except (ValidationError, ValueError) as exc:
            return _error(400, f"invalid request: {exc}".splitlines()[0])
        if body.stream:
            return _error(400, "stream=true is not supported by the local endpoint")
        try:
            loaded = await self._resolve(body.model)
        except LookupError as exc:
            return _error(404, str(exc), "not_found_error")
        max_tokens = body.max_completion_tokens or body.max_tokens or self._default_max
        try:
            (gen,) = await asyncio.to_thread(generate_batch, loaded, [body.messages], max_tokens=max_tokens)
        except Exception as exc:
            return _error(500, f"generation failed: {type(exc).__name__}: {exc}", "server_error")
        return web.json_response(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": gen.text},
                        "finish_reason": gen.finish_reason,
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": gen.prompt_tokens,
                    "completion_tokens": gen.completion_tokens,
                    "total_tokens": gen.prompt_tokens + gen.completion_tokens,
                },
            }
        )
