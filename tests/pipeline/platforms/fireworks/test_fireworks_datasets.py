"""Fireworks datasets through the real SDK against the fake: upload, resume, signed URLs, staging."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.testing.fireworks import FakeFireworks
from pipeline.domain.platform import (
    NotFound,
    PlatformError,
)
from pipeline.platforms.fireworks.platform import FireworksPlatform
from tests.pipeline.fireworks_support import ACCT, CHAT_ROWS, write_jsonl


async def test_upload_creates_uploads_validates_and_never_twice(
    fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", CHAT_ROWS)
    info = await make_platform().datasets.upload("sftbot-r1-train", path, examples=12)
    assert info.ready and info.examples == 12 and info.name == f"accounts/{ACCT}/datasets/sftbot-r1-train"
    assert fake.datasets["sftbot-r1-train"].files == {"train.jsonl": path.read_bytes()}

    # A restarted bot uploads the same id again: the create answers 409, nothing is re-uploaded.
    again = await make_platform().datasets.upload("sftbot-r1-train", path, examples=12)
    assert again.ready
    assert fake.create_counts("datasets") == {"sftbot-r1-train": 1}
    assert [r.status for r in fake.calls("POST", r"/datasets$")] == [200, 409]
    assert len(fake.calls("POST", r":upload$")) == 1
    assert len(fake.calls("POST", r":validateUpload$")) == 1


async def test_upload_resumes_a_dataset_left_uploading(fake: FakeFireworks, platform: FireworksPlatform, tmp_path: Path) -> None:
    fake.add_dataset("sftbot-r2-train", {}, ready=False)  # created, then the bot crashed
    path = write_jsonl(tmp_path / "train.jsonl", CHAT_ROWS)
    info = await platform.datasets.upload("sftbot-r2-train", path, examples=12)
    assert info.ready and fake.datasets["sftbot-r2-train"].files == {"train.jsonl": path.read_bytes()}


async def test_upload_counts_examples_when_not_told(fake: FakeFireworks, platform: FireworksPlatform, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "eval.jsonl", CHAT_ROWS[:5])
    info = await platform.datasets.upload("sftbot-r2-eval", path, examples=0)
    assert info.examples == 5
    assert fake.calls("POST", r"/datasets$")[0].json["dataset"]["exampleCount"] == "5"


async def test_large_upload_goes_through_the_signed_url(
    fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "big.jsonl", CHAT_ROWS)
    info = await make_platform(direct_upload_limit=10).datasets.upload("sftbot-r3-train", path, examples=12)
    assert info.ready
    assert fake.datasets["sftbot-r3-train"].files == {"big.jsonl": path.read_bytes()}
    assert not fake.calls("POST", r":upload$")
    # The fake refuses a signed PUT that carries an Authorization header, so this also proves
    # the API key never went to storage.
    assert [r.status for r in fake.calls("PUT", r"^/signed/upload/")] == [200]


async def test_check_dataset_names_the_problem(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    with pytest.raises(NotFound, match=f"dataset accounts/{ACCT}/datasets/nope not found"):
        await platform.datasets.check("nope")
    fake.add_dataset("half", {"a.jsonl": b"{}\n"}, ready=False)
    with pytest.raises(PlatformError, match=f"dataset accounts/{ACCT}/datasets/half is still uploading"):
        await platform.datasets.check(f"accounts/{ACCT}/datasets/half")
    fake.add_dataset("holdout", {"a.jsonl": b"{}\n{}\n{}\n"})
    for ref in ("holdout", f"accounts/{ACCT}/datasets/holdout"):
        info = await platform.datasets.check(ref)
        assert info.ready and info.examples == 3 and info.id == "holdout"
    with pytest.raises(PlatformError, match="neither a dataset id"):
        await platform.datasets.check("datasets/holdout")


async def test_stage_downloads_once_and_concatenates_shards(
    fake: FakeFireworks, platform: FireworksPlatform, tmp_path: Path
) -> None:
    fake.add_dataset("user-data", {"b.jsonl": b'{"n": 2}\n', "a.jsonl": b'{"n": 1}'})  # a.jsonl lacks a final newline
    dest = tmp_path / "staged" / "user-data.jsonl"
    assert await platform.datasets.stage("user-data", dest) == dest
    assert dest.read_bytes() == b'{"n": 1}\n{"n": 2}\n'
    seen = len(fake.requests)
    assert await platform.datasets.stage(f"accounts/{ACCT}/datasets/user-data", dest) == dest
    assert len(fake.requests) == seen  # cached: not a single request
