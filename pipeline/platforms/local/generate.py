"""One endpoint request's generation: streamed, sampled or greedy, ``n`` choices, stop strings,
cancellable at every token, taking turns with the other requests one decoding step at a time.

It runs transformers' own ``generate`` in a worker thread and hooks a ``StoppingCriteria``,
the documented per-token callback that sees every new token before the next forward pass:
there it decodes the new text, applies ``stop``, counts tokens, hands the text to the event
loop, returns "finished" for every row when the request is cancelled (the client left, the
server stops), and passes the turn to the next waiting request (``Turns``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pipeline.platforms.local.serve import LoadedModel, stop_ids


class Turns:
    """Decoding steps taken in turn, first come first served, by every generation of a server.

    A forward pass already uses every core, so two requests gain nothing from running at
    once; taking turns per token means a long request slows the next one down by one step
    per token instead of making it wait for its end.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._line: deque[Generation] = deque()

    def take(self, gen: Generation) -> bool:
        """Wait for ``gen``'s turn (False when it was cancelled while waiting)."""
        with self._cond:
            if gen not in self._line:
                self._line.append(gen)
            self._cond.wait_for(lambda: self._line[0] is gen or gen.cancelled.is_set())
            return self._line[0] is gen

    def pass_on(self, gen: Generation) -> bool:
        """Let every request waiting behind ``gen`` take one step, then continue."""
        with self._cond:
            if len(self._line) > 1 and self._line[0] is gen:
                self._line.rotate(-1)
                self._cond.notify_all()
        return self.take(gen)

    def leave(self, gen: Generation) -> None:
        with self._cond:
            with contextlib.suppress(ValueError):
                self._line.remove(gen)
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


@dataclass(frozen=True)
class Sampling:
    """What the request asked for: ``temperature`` 0 is greedy (and ``n`` copies of one answer)."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


class Delta(NamedTuple):
    choice: int
    text: str
    finish_reason: str | None  # "stop", "length", or None while it goes on


@dataclass
class _Choice:
    """One answer being decoded. Text is decoded over a window of recent tokens (the way
    vLLM detokenizes) so each token costs O(window), and held back while it ends in an
    incomplete UTF-8 sequence or could be the start of a stop string."""

    ids: list[int] = field(default_factory=list)
    prefix: int = 0  # window start
    read: int = 0  # tokens already turned into text
    text: str = ""
    sent: int = 0  # characters already handed out
    finish_reason: str | None = None

    def add(self, token: int, decode: Callable[[list[int]], str], stop: Sequence[str]) -> str:
        self.ids.append(token)
        before = decode(self.ids[self.prefix : self.read])
        after = decode(self.ids[self.prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before) :]
            self.prefix, self.read = self.read, len(self.ids)
        return self._release(stop)

    def finish(self, reason: str, decode: Callable[[list[int]], str], stop: Sequence[str]) -> str:
        if self.finish_reason is None:
            self.text += decode(self.ids[self.prefix :])[len(decode(self.ids[self.prefix : self.read])) :]
            self.read = len(self.ids)
            out = self._release(stop)
            if self.finish_reason is None:  # no stop string in the tail: all the rest goes out
                self.finish_reason, out = reason, out + self.text[self.sent :]
                self.sent = len(self.text)
            return out
        return ""

    def _release(self, stop: Sequence[str]) -> str:
        hits = [i for s in stop if (i := self.text.find(s, max(0, self.sent - len(s) + 1))) >= 0]
        if hits:
            self.text, self.finish_reason = self.text[: min(hits)], "stop"
            safe = len(self.text)
        else:
            safe = len(self.text) - max((len(s) - 1 for s in stop), default=0)
        out = self.text[self.sent : safe] if safe > self.sent else ""
        self.sent = max(self.sent, safe)
        return out


class Generation:
    """One request's answers. ``tokens`` counts generated tokens as they come (a test can
    watch it stop); ``cancel()`` ends it at the next token; ``finished`` is set at its end."""

    def __init__(self, loaded: LoadedModel, prompt: list[int], sampling: Sampling, turns: Turns) -> None:
        self.loaded, self.prompt, self.sampling, self._turns = loaded, prompt, sampling, turns
        self.rows = 1 if sampling.greedy else sampling.n  # greedy choices are identical: decode once
        self._choices = [_Choice() for _ in range(self.rows)]
        self._stops = set(stop_ids(loaded))
        self.tokens = 0
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self._publish: Callable[[list[Delta]], None] = lambda deltas: None

    @property
    def completion_tokens(self) -> int:
        """Tokens of all choices, as OpenAI's usage counts them (an end-of-turn token included)."""
        return self.tokens * (self.sampling.n // self.rows)

    def cancel(self) -> None:
        self.cancelled.set()
        self._turns.wake()

    async def stream(self) -> AsyncIterator[list[Delta]]:
        """Run in a daemon thread and yield each step's text as it comes; cancelled when the
        consumer stops (a client that left, a stopping server) so nothing generates for nobody."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[list[Delta] | BaseException | None] = asyncio.Queue()

        def put(item: list[Delta] | BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: the process is exiting
                loop.call_soon_threadsafe(queue.put_nowait, item)

        self._publish = put
        # A daemon thread, not the loop's executor: `asyncio.run` waits for executor threads
        # at exit, and a forced stop must not wait for a forward pass.
        threading.Thread(target=self._run_then_signal, args=(put,), name="sftbot-generate", daemon=True).start()
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.cancel()

    def _run_then_signal(self, put: Callable[[list[Delta] | BaseException | None], None]) -> None:
        try:
            self.run()
        except Exception as exc:
            put(exc)
        finally:
            self.finished.set()
            put(None)

    def run(self) -> None:
        """Blocking: generate until every choice has finished, or the request is cancelled."""
        import torch

        try:
            if not self._turns.take(self):
                return
            with torch.no_grad():
                self.loaded.model.generate(**self._generate_kwargs(torch))
            self._finish_all("length")
        finally:
            self._turns.leave(self)

    def _generate_kwargs(self, torch: Any) -> dict[str, Any]:
        from transformers import GenerationConfig, StoppingCriteriaList

        ids = torch.tensor([self.prompt] * self.rows, dtype=torch.long, device=self.loaded.device)
        s, stops = self.sampling, sorted(self._stops)
        config = GenerationConfig(  # type: ignore[no-untyped-call]
            max_new_tokens=s.max_tokens,
            do_sample=not s.greedy,
            temperature=None if s.greedy else s.temperature,
            top_p=None if s.greedy else s.top_p,
            top_k=None,  # OpenAI's sampling has no top-k
            pad_token_id=self.loaded.tokenizer.pad_token_id if self.loaded.tokenizer.pad_token_id is not None else stops[0],
            eos_token_id=stops,
        )
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "generation_config": config,
            "stopping_criteria": StoppingCriteriaList([_per_token(self)]),
        }

    def step(self, new_tokens: list[int]) -> list[bool]:
        """One decoding step (every row's new token): text out, stop checks, then the next turn."""
        decode = self._decode
        deltas: list[Delta] = []
        for row, (choice, token) in enumerate(zip(self._choices, new_tokens, strict=True)):
            if choice.finish_reason is not None:
                continue
            self.tokens += 1
            if token in self._stops:
                text = choice.finish("stop", decode, self.sampling.stop)
            else:
                text = choice.add(token, decode, self.sampling.stop)
                if choice.finish_reason is None and len(choice.ids) >= self.sampling.max_tokens:
                    text += choice.finish("length", decode, self.sampling.stop)
            deltas.extend(self._fan_out(row, text, choice.finish_reason))
        if deltas:
            self._publish(deltas)
        if self.cancelled.is_set() or not self._turns.pass_on(self):
            return [True] * self.rows
        return [c.finish_reason is not None for c in self._choices]

    def _finish_all(self, reason: str) -> None:
        if self.cancelled.is_set():
            return
        deltas: list[Delta] = []
        for row, choice in enumerate(self._choices):
            if choice.finish_reason is None:
                text = choice.finish(reason, self._decode, self.sampling.stop)
                deltas.extend(self._fan_out(row, text, choice.finish_reason))
        if deltas:
            self._publish(deltas)

    def _fan_out(self, row: int, text: str, reason: str | None) -> list[Delta]:
        if not text and reason is None:
            return []
        if self.rows == self.sampling.n:
            return [Delta(row, text, reason)]
        return [Delta(i, text, reason) for i in range(self.sampling.n)]

    def _decode(self, ids: list[int]) -> str:
        return str(self.loaded.tokenizer.decode(ids, skip_special_tokens=True))


def _per_token(gen: Generation) -> Any:
    """The ``StoppingCriteria`` that drives ``gen`` (transformers is imported only when used)."""
    import torch
    from transformers import StoppingCriteria

    class PerToken(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = gen.step([int(t) for t in input_ids[:, -1].tolist()])
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return PerToken()
