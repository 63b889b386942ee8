"""The fake's datasets: create, upload (direct and signed), validate, download."""

from __future__ import annotations

import json
import time

from aiohttp import web

from .wire import VALID_ID, Ctx, page, rpc_error
from .world import (
    DatasetRecord,
)


class DatasetRoutes:
    def _dataset(self, ctx: Ctx) -> DatasetRecord | web.Response:
        ds = self.datasets.get(ctx.groups[1])
        if ds is None:
            return rpc_error("NOT_FOUND", f"dataset accounts/{ctx.groups[0]}/datasets/{ctx.groups[1]} not found")
        return ds

    async def _dataset_create(self, ctx: Ctx) -> web.Response:
        body = ctx.body or {}
        ds_id = str(body.get("datasetId") or "")
        if not VALID_ID.match(ds_id):
            return rpc_error("INVALID_ARGUMENT", f"invalid dataset id {ds_id!r}")
        if ds_id in self.datasets:
            return rpc_error("ALREADY_EXISTS", f"dataset accounts/{self.account}/datasets/{ds_id} already exists")
        spec = body.get("dataset") or {}
        rec = DatasetRecord(id=ds_id, account=self.account, created_wall=time.time())
        rec.example_count = spec.get("exampleCount")
        rec.format = spec.get("format") or "FORMAT_UNSPECIFIED"
        rec.display_name = spec.get("displayName") or ""
        self.datasets[ds_id] = rec
        self.committed_creates["datasets", ds_id] += 1
        return web.json_response(rec.wire(ctx.now))

    async def _dataset_list(self, ctx: Ctx) -> web.Response:
        items = [d.wire(ctx.now) for d in sorted(self.datasets.values(), key=lambda d: d.id)]
        return page(items, "datasets", ctx.query, self.max_page_size)

    async def _dataset_get(self, ctx: Ctx) -> web.Response:
        ds = self._dataset(ctx)
        return ds if isinstance(ds, web.Response) else web.json_response(ds.wire(ctx.now))

    async def _dataset_upload_endpoint(self, ctx: Ctx) -> web.Response:
        ds = self._dataset(ctx)
        if isinstance(ds, web.Response):
            return ds
        sizes = (ctx.body or {}).get("filenameToSize") or {}
        if not sizes or any(int(v) <= 0 for v in sizes.values()):
            return rpc_error("INVALID_ARGUMENT", "filenameToSize must list non-empty files")
        ds.registered = {k: int(v) for k, v in sizes.items()}  # replaces the file set, like the real one
        urls = {n: self._signer.sign(self.base_url, "PUT", f"/signed/upload/{ds.account}/{ds.id}/{n}") for n in ds.registered}
        return web.json_response({"filenameToSignedUrls": urls})

    async def _dataset_upload(self, ctx: Ctx) -> web.Response:
        ds = self._dataset(ctx)
        if isinstance(ds, web.Response):
            return ds
        if not ctx.request.content_type.startswith("multipart/"):
            return rpc_error("INVALID_ARGUMENT", "expected a multipart/form-data body with a 'file' part")
        reader = await ctx.request.multipart()
        filename, data = "", b""
        while (part := await reader.next()) is not None:
            if getattr(part, "name", None) == "file":
                filename = getattr(part, "filename", None) or "data.jsonl"
                data = bytes(await part.read(decode=False))  # type: ignore[union-attr]
        if not data:
            return rpc_error("INVALID_ARGUMENT", "the uploaded file is empty")
        if len(data) > self.max_direct_upload_bytes:
            return rpc_error("INVALID_ARGUMENT", "file too large for :upload; use getUploadEndpoint")
        ds.files = {filename: data}
        ds.registered = {filename: len(data)}
        return web.json_response(
            {"id": ds.id, "bytes": len(data), "filename": filename, "object": "file", "createdAt": int(time.time())}
        )

    async def _dataset_validate(self, ctx: Ctx) -> web.Response:
        ds = self._dataset(ctx)
        if isinstance(ds, web.Response):
            return ds
        if ds.state(ctx.now) == "READY" or ds.ready_at is not None:
            return web.json_response({})
        missing = [n for n in ds.registered if n not in ds.files]
        if not ds.registered or missing:
            return rpc_error(
                "FAILED_PRECONDITION", f"dataset {ds.name} has no uploaded file {missing[0] if missing else ''}".strip()
            )
        for name, data in ds.files.items():
            for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                try:
                    row = json.loads(line) if line.strip() else {}
                except ValueError:
                    row = None
                if line.strip() and (not isinstance(row, dict) or "messages" not in row):
                    return rpc_error("INVALID_ARGUMENT", f"DATASET_INVALID: {name} line {lineno} is not a chat example")
        if ds.example_count is None:
            ds.example_count = str(sum(d.count(b"\n") for d in ds.files.values()))
        ds.ready_at = ctx.now + self.dataset_ready_seconds
        return web.json_response({})

    async def _dataset_download_endpoint(self, ctx: Ctx) -> web.Response:
        ds = self._dataset(ctx)
        if isinstance(ds, web.Response):
            return ds
        if ds.state(ctx.now) != "READY":
            return rpc_error("FAILED_PRECONDITION", f"dataset {ds.name} is not READY")
        urls = {n: self._signer.sign(self.base_url, "GET", f"/signed/datasets/{ds.account}/{ds.id}/{n}") for n in ds.files}
        return web.json_response({"filenameToSignedUrls": urls})

    # -- signed URLs (no Fireworks auth; a signature in the query instead) ------------------------

    def _check_signed(self, ctx: Ctx) -> web.Response | None:
        if "Authorization" in ctx.request.headers:
            # Cloud storage rejects a request that carries both a signature and credentials;
            # it would also mean the client leaked its API key to a third party.
            return web.Response(status=400, text="InvalidArgument: signed URL requests must not carry an Authorization header")
        problem = self._signer.check(ctx.request.method, ctx.request.path, ctx.query)
        return web.Response(status=403 if problem != "ExpiredToken" else 400, text=problem) if problem else None

    async def _signed_put(self, ctx: Ctx) -> web.Response:
        if err := self._check_signed(ctx):
            return err
        ds = self.datasets.get(ctx.groups[1])
        name = ctx.groups[2]
        if ds is None or name not in ds.registered:
            return web.Response(status=404, text="NoSuchUpload")
        size = ds.registered[name]
        if (
            ctx.request.headers.get("Content-Type") != "application/octet-stream"
            or ctx.request.headers.get("X-Goog-Content-Length-Range") != f"{size},{size}"
        ):
            return web.Response(
                status=403, text="SignatureDoesNotMatch: Content-Type and X-Goog-Content-Length-Range are signed headers"
            )
        data = await ctx.request.read()
        if len(data) != size:
            return web.Response(status=400, text="EntityTooLarge" if len(data) > size else "EntityTooSmall")
        ds.files[name] = data
        return web.Response(status=200)

    async def _signed_dataset_get(self, ctx: Ctx) -> web.Response:
        if err := self._check_signed(ctx):
            return err
        ds = self.datasets.get(ctx.groups[1])
        if ds is None or ctx.groups[2] not in ds.files:
            return web.Response(status=404, text="NoSuchKey")
        return web.Response(body=ds.files[ctx.groups[2]], content_type="application/octet-stream")
