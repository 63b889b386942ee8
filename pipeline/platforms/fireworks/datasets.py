"""Fireworks datasets: check a user's dataset, stage it locally once, upload the run's own.

Uploads up to 150 MB go through ``datasets.upload``; larger files through signed URLs
(reference/fireworks.md §2.2), PUT with a plain HTTP client that never carries the API key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Protocol

import httpx
from fireworks import AsyncFireworks
from fireworks.types import Dataset
from fireworks.types.dataset_param import DatasetParam

from pipeline.domain.fsio import atomic_output
from pipeline.domain.platform import DatasetInfo, PlatformError
from pipeline.domain.poll import Pace, PollTimeout, poll_until
from pipeline.platforms.fireworks import wire
from pipeline.platforms.fireworks.calls import Caller, StorageError

DIRECT_UPLOAD_LIMIT = 150 * 1024 * 1024  # `datasets.upload` handles up to 150 MB; above that, signed URLs
_CHUNK = 1024 * 1024


class DatasetSettings(Protocol):
    """What the datasets role reads of FireworksSettings (which imports this module's limit)."""

    @property
    def account_id(self) -> str: ...
    @property
    def timeout(self) -> float: ...
    @property
    def poll_seconds(self) -> float: ...
    @property
    def dataset_ready_timeout(self) -> float: ...
    @property
    def direct_upload_limit(self) -> int: ...


class FireworksDatasets:
    """Dataset calls of the Fireworks platform (one per platform instance)."""

    def __init__(self, control: AsyncFireworks, storage: httpx.AsyncClient, calls: Caller, settings: DatasetSettings) -> None:
        self._control, self._storage, self._calls = control, storage, calls
        self._account = settings.account_id
        self._timeout = settings.timeout
        self._poll_seconds = settings.poll_seconds
        self._ready_timeout = settings.dataset_ready_timeout
        self._direct_upload_limit = settings.direct_upload_limit

    async def check(self, ref: str) -> DatasetInfo:
        account, ds_id = self.ref(ref)
        ds = await self._get_dataset(account, ds_id)
        info = wire.dataset_info(ds, ds_id, account)
        if not info.ready:
            if ds.state == "UPLOADING":
                raise PlatformError(
                    f"dataset {info.name} is still uploading; wait until it is READY and try again.", retryable=True
                )
            raise PlatformError(f"dataset {info.name} is not ready (state {ds.state}).", retryable=True)
        return info

    async def stage(self, ref: str, dest: Path) -> Path:
        if dest.exists():
            return dest  # staged once per run; the copy on disk is the run's reference
        info = await self.check(ref)
        account, ds_id = self.ref(ref)
        links = await self._calls.run(
            f"get download links for dataset {info.name}",
            lambda: self._control.datasets.get_download_endpoint(ds_id, account_id=account),
            missing=f"dataset {info.name}",
        )
        urls = links.filename_to_signed_urls or {}
        if not urls:
            raise PlatformError(f"dataset {info.name} has no files to download.")
        with atomic_output(dest) as part, part.open("wb") as out:
            for filename in sorted(urls):  # several shards become one JSONL file, in a stable order
                await self._download(urls[filename], out, what=f"download {filename} of dataset {info.name}")
        return dest

    async def upload(self, dataset_id: str, path: Path, *, examples: int) -> DatasetInfo:
        name = f"accounts/{self._account}/datasets/{dataset_id}"
        if examples <= 0:
            examples = await asyncio.to_thread(_count_lines, path)
        spec: DatasetParam = {"user_uploaded": {}, "example_count": str(examples), "format": "CHAT", "display_name": dataset_id}
        ds = await self._calls.run(
            f"create dataset {name}",
            lambda: self._control.datasets.create(dataset_id=dataset_id, dataset=spec),
            on_conflict=lambda: self._control.datasets.get(dataset_id),
        )
        if ds.state == "READY":
            return wire.dataset_info(ds, dataset_id, self._account)  # uploaded before (a resume): never upload twice
        size = path.stat().st_size
        if size == 0:
            raise PlatformError(f"cannot upload {path.name} to dataset {name}: the file is empty.")
        if size <= self._direct_upload_limit:
            await self._calls.run(
                f"upload {path.name} to dataset {name}",
                lambda: self._control.datasets.upload(dataset_id, file=path, timeout=max(self._timeout, 600.0)),
            )
        else:
            await self._upload_signed(dataset_id, name, path, size)
        ds = await self._get_dataset(self._account, dataset_id)
        if ds.state != "READY":
            try:
                await self._calls.run(
                    f"validate the upload of dataset {name}",
                    lambda: self._control.datasets.validate_upload(dataset_id, body={}),
                )
            except PlatformError:
                # Some uploads finalise themselves; a refused validate is fine if it is READY now.
                if (await self._get_dataset(self._account, dataset_id)).state != "READY":
                    raise
        return await self._wait_dataset_ready(dataset_id, name)

    async def _get_dataset(self, account: str, ds_id: str) -> Dataset:
        name = f"accounts/{account}/datasets/{ds_id}"
        return await self._calls.run(
            f"read dataset {name}",
            lambda: self._control.datasets.get(ds_id, account_id=account),
            missing=f"dataset {name}",
        )

    async def _wait_dataset_ready(self, dataset_id: str, name: str) -> DatasetInfo:
        try:
            ds = await poll_until(
                lambda: self._get_dataset(self._account, dataset_id),
                lambda d: d.state == "READY",
                Pace(timeout=self._ready_timeout, interval=self._poll_seconds, backoff=1.0),
                what=f"dataset {name}",
            )
        except PollTimeout as exc:
            state = getattr(exc.last, "state", "not ready")
            raise PlatformError(
                f"dataset {name} is still {state} after {self._ready_timeout:.0f} s of waiting.", retryable=True
            ) from None
        return wire.dataset_info(ds, dataset_id, self._account)

    async def _upload_signed(self, dataset_id: str, name: str, path: Path, size: int) -> None:
        links = await self._calls.run(
            f"get an upload link for dataset {name}",
            lambda: self._control.datasets.get_upload_endpoint(dataset_id, filename_to_size={path.name: str(size)}),
        )
        url = (links.filename_to_signed_urls or {}).get(path.name)
        if not url:
            raise PlatformError(f"Fireworks returned no upload link for {path.name} of dataset {name}.")
        # Both headers are part of the signature (reference §2.2); the API key must not be sent.
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Goog-Content-Length-Range": f"{size},{size}",
            "Content-Length": str(size),
        }

        async def put() -> None:
            response = await self._storage.put(
                url, content=_file_chunks(path), headers=headers, timeout=max(self._timeout, 600.0)
            )
            if response.status_code >= 300:
                raise StorageError(response.status_code, response.text)

        await self._calls.run(f"upload {path.name} to dataset {name}", put)

    async def _download(self, url: str, out: IO[bytes], *, what: str) -> None:
        start = out.tell()

        async def fetch() -> None:
            out.seek(start)
            out.truncate()  # a retry starts this file over
            last = b"\n"
            async with self._storage.stream("GET", url) as response:
                if response.status_code >= 300:
                    raise StorageError(response.status_code, (await response.aread()).decode("utf-8", "replace"))
                async for chunk in response.aiter_bytes(_CHUNK):
                    if chunk:
                        out.write(chunk)
                        last = chunk[-1:]
            if last != b"\n":
                out.write(b"\n")  # so the next shard starts on its own line

        await self._calls.run(what, fetch)

    def ref(self, ref: str) -> tuple[str, str]:
        parsed = wire.dataset_ref(ref, self._account)
        if parsed is None:
            raise PlatformError(f"dataset reference {ref!r} is neither a dataset id nor accounts/<account>/datasets/<id>.")
        return parsed

    def name(self, ref: str) -> str:
        account, ds_id = self.ref(ref)
        return f"accounts/{account}/datasets/{ds_id}"


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk
