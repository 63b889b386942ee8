"""The local endpoint answers only its clients and bounds its work (issue #19 finding 5): a
Host header that is not a loopback or configured name (DNS rebinding) and an Origin of
another site are refused, POSTs must be JSON (a cross-site text/plain "simple request" is
refused before anything runs), max_tokens is capped, a client that leaves cancels its
generation, a long request does not starve the next, and a full endpoint answers 503 with
Retry-After. Driven over real HTTP against the tiny test model (no run needed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

pytestmark = pytest.mark.local
pytest.importorskip("torch")
pytest.importorskip("transformers")
httpx = pytest.importorskip("httpx")

from pipeline.platforms.local.generate import Generation  # noqa: E402
from pipeline.platforms.local.models import TINY_MODEL_ID, ensure_folder, resolve  # noqa: E402
from pipeline.platforms.local.serve import LoadedModel, load_model  # noqa: E402
from pipeline.platforms.local.server import ChatServer, EndpointConfig  # noqa: E402
from tests.pipeline.platforms.local.endpoint_support import port_is_free  # noqa: E402

LONG = 10_000  # more than any test waits for: the tiny random model never ends its turn early


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    resolved = resolve(TINY_MODEL_ID, tmp_path_factory.mktemp("tiny"))
    assert resolved is not None
    return load_model("tiny", ensure_folder(resolved), None, "cpu")


class Served:
    def __init__(self, server: ChatServer, resolved: list[str]) -> None:
        self.server, self.resolved = server, resolved
        self.url = f"http://127.0.0.1:{server.port}"

    def body(self, **extra: Any) -> dict[str, Any]:
        return {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, **extra}

    async def generating(self) -> Generation:
        """The one generation under way, once it has produced a token."""
        for _ in range(3000):
            gens = [g for g in self.server.active if g.tokens > 0]
            if gens:
                return gens[0]
            await asyncio.sleep(0.01)
        raise AssertionError("no generation started")


@contextlib.asynccontextmanager
async def serving(tiny: LoadedModel, **config: Any) -> AsyncIterator[Served]:
    resolved: list[str] = []  # every model lookup: a refused request never gets this far

    async def resolve_model(name: str) -> LoadedModel:
        resolved.append(name)
        if name != "tiny":
            raise LookupError(f"The model {name!r} is not deployed here")
        return tiny

    config.setdefault("max_tokens", LONG)
    server = ChatServer(resolve_model, lambda: ["tiny"], config=EndpointConfig(**config))
    await server.start()
    try:
        yield Served(server, resolved)
    finally:
        await server.stop()


def _error(resp: Any) -> dict[str, Any]:
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return dict(body["error"])


async def test_only_loopback_and_configured_host_names_are_answered(tiny: LoadedModel) -> None:
    async with serving(tiny, allowed_hosts=("gpu-box.internal",)) as s, httpx.AsyncClient() as client:
        port = s.server.port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST", f"gpu-box.internal:{port}"):
            assert (await client.get(f"{s.url}/v1/models", headers={"Host": host})).status_code == 200, host
        # A page on evil.example that rebinds its name to 127.0.0.1 sends its own name as Host.
        for host in ("evil.example", f"evil.example:{port}", f"localhost.evil.example:{port}", f"127.0.0.1.nip.io:{port}"):
            resp = await client.post(f"{s.url}/v1/chat/completions", json=s.body(max_tokens=4), headers={"Host": host})
            assert resp.status_code == 421 and _error(resp)["code"] == "host_not_allowed", host
            assert "SFTBOT_LOCAL_ALLOWED_HOSTS" in _error(resp)["message"]
        assert s.resolved == []  # nothing was looked up, let alone generated


async def test_a_web_page_of_another_site_is_refused_a_local_one_is_answered(tiny: LoadedModel) -> None:
    async with serving(tiny) as s, httpx.AsyncClient() as client:
        for origin in ("http://evil.example", "null", "http://127.0.0.1.evil.example:80"):
            resp = await client.post(f"{s.url}/v1/chat/completions", json=s.body(max_tokens=2), headers={"Origin": origin})
            assert resp.status_code == 403 and _error(resp)["code"] == "origin_not_allowed", origin
        assert s.resolved == []
        local_ui = await client.post(
            f"{s.url}/v1/chat/completions", json=s.body(max_tokens=2), headers={"Origin": "http://localhost:3000"}
        )
        assert local_ui.status_code == 200


async def test_a_post_that_is_not_json_is_refused_before_anything_runs(tiny: LoadedModel) -> None:
    """A cross-site form or fetch with text/plain needs no CORS preflight; refusing it closes that door."""
    async with serving(tiny) as s, httpx.AsyncClient() as client:
        payload = json.dumps(s.body(max_tokens=2))
        for ctype in (
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            None,
        ):
            headers = {"Content-Type": ctype} if ctype else {}
            resp = await client.post(f"{s.url}/v1/chat/completions", content=payload, headers=headers)
            assert resp.status_code == 415 and "application/json" in _error(resp)["message"], ctype
        assert s.resolved == []
        ok = await client.post(
            f"{s.url}/v1/chat/completions", content=payload, headers={"Content-Type": "application/json; charset=utf-8"}
        )
        assert ok.status_code == 200


async def test_max_tokens_over_the_cap_is_a_400_that_states_the_cap(tiny: LoadedModel) -> None:
    async with serving(tiny, max_tokens=64) as s, httpx.AsyncClient() as client:
        for field in ("max_tokens", "max_completion_tokens"):
            resp = await client.post(f"{s.url}/v1/chat/completions", json=s.body(**{field: 65}))
            err = _error(resp)
            assert resp.status_code == 400 and err["param"] == field and "cap of 64" in err["message"]
        at_cap = await client.post(f"{s.url}/v1/chat/completions", json=s.body(max_tokens=64))
        assert at_cap.status_code == 200 and at_cap.json()["usage"]["completion_tokens"] == 64


async def _stream_lines(client: Any, s: Served, **extra: Any) -> AsyncIterator[str]:
    async with client.stream("POST", f"{s.url}/v1/chat/completions", json=s.body(stream=True, **extra)) as resp:
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        async for line in resp.aiter_lines():
            if line:
                yield line


async def _finished(gen: Generation) -> None:
    assert await asyncio.to_thread(gen.finished.wait, 60), "the generation did not stop"


async def test_a_stream_ends_with_done_and_a_client_that_leaves_mid_stream_cancels_its_generation(tiny: LoadedModel) -> None:
    async with serving(tiny) as s, httpx.AsyncClient() as client:
        short = [line async for line in _stream_lines(client, s, max_tokens=3)]
        assert short[-1] == "data: [DONE]" and json.loads(short[-2][6:])["choices"][0]["finish_reason"] == "length"
        lines = _stream_lines(client, s, max_tokens=LONG)
        for _ in range(4):
            await anext(lines)
        gen = await s.generating()
        await lines.aclose()  # the client goes away with ~10,000 tokens still to come
        await _finished(gen)
        assert gen.cancelled.is_set() and gen.tokens < LONG
        stopped_at = gen.tokens
        await asyncio.to_thread(gen.finished.wait)  # the worker has exited: the count cannot move
        assert gen.tokens == stopped_at and not s.server.active


async def test_a_client_that_leaves_before_a_plain_answer_cancels_it(tiny: LoadedModel) -> None:
    async with serving(tiny) as s:
        _, writer = await asyncio.open_connection("127.0.0.1", s.server.port)
        body = json.dumps(s.body(max_tokens=LONG)).encode()
        head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        gen = await s.generating()
        writer.close()  # gone before any answer
        await writer.wait_closed()
        await _finished(gen)
        assert gen.cancelled.is_set() and gen.tokens < LONG


async def test_a_long_generation_does_not_starve_the_next_request(tiny: LoadedModel) -> None:
    """Requests take turns one decoding step at a time: a short request is answered while a
    10,000-token one is still generating, instead of after it."""
    async with serving(tiny) as s, httpx.AsyncClient(timeout=120) as client:
        lines = _stream_lines(client, s, max_tokens=LONG)
        await anext(lines)
        long = await s.generating()
        quick = await client.post(f"{s.url}/v1/chat/completions", json=s.body(max_tokens=4))
        assert quick.status_code == 200 and quick.json()["usage"]["completion_tokens"] == 4
        assert not long.finished.is_set() and long.tokens < LONG  # still going, and it was not waited for
        await lines.aclose()
        await _finished(long)


async def test_a_full_endpoint_answers_503_with_retry_after_within_its_wait(tiny: LoadedModel) -> None:
    async with serving(tiny, max_active=1, wait_seconds=0.2) as s, httpx.AsyncClient(timeout=120) as client:
        lines = _stream_lines(client, s, max_tokens=LONG)
        await anext(lines)
        long = await s.generating()
        busy = await client.post(f"{s.url}/v1/chat/completions", json=s.body(max_tokens=4))
        err = _error(busy)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
        assert err["type"] == "server_error" and err["code"] == "overloaded" and "retry in 1 s" in err["message"]
        await lines.aclose()
        await _finished(long)
        after = await client.post(f"{s.url}/v1/chat/completions", json=s.body(max_tokens=4))
        assert after.status_code == 200  # the place is free again


async def test_stopping_the_server_cancels_what_generates_and_frees_the_port(tiny: LoadedModel) -> None:
    """What `sftbot serve` and `sftbot endpoint` do on their way out."""
    got: list[str] = []
    async with serving(tiny) as s, httpx.AsyncClient(timeout=120) as client:
        port = s.server.port

        async def read(into: Callable[[str], None]) -> None:
            async for line in _stream_lines(client, s, max_tokens=LONG):
                into(line)

        reading = asyncio.create_task(read(got.append))
        gen = await s.generating()
        await s.server.stop()
        await _finished(gen)
        await asyncio.wait_for(reading, 30)
    assert gen.cancelled.is_set() and gen.tokens < LONG and port_is_free(port)
    assert "stopped before the answer was complete" in got[-1] and "[DONE]" not in got[-1]
