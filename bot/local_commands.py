"""`sftbot endpoint RUN` and `sftbot export RUN`: a local run's model after the run's process is gone.

Both read the run from the database and its files from the local platform's folder; neither
needs the process that trained or deployed it. Every refusal names the problem and the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.errors import Refused
from bot.settings import Settings
from pipeline.domain import ids
from pipeline.domain.fsio import write_atomic
from pipeline.domain.platform import DeploymentState
from pipeline.domain.provenance import Change, Ref, ResourceKind, ResourceState
from pipeline.domain.records import CandidateRecord, RunRecord
from pipeline.domain.slots import CandidateState
from pipeline.platforms.local.deploy import DeploymentRecord
from pipeline.platforms.local.export import ExportFormat, ExportUnavailable
from pipeline.platforms.local.platform import LocalPlatform
from pipeline.platforms.local.server import EndpointConfig
from pipeline.run.final_report import render_report
from pipeline.run.summary import summarize
from pipeline.store import runs
from pipeline.store.db import Database

Out = Callable[[str], None]


def _say(line: str) -> None:
    print(line, flush=True)  # a supervisor (or a test) reading the pipe sees each line at once


def quiet_ml_libraries() -> None:
    """Keep the terminal for the run's own progress: no weight-loading bars or deprecation noise."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # the local extra is missing; the platform says so when it is used
        pass


def local_platform(settings: Settings, *, port: int | None = None, batch_size: int = 16) -> LocalPlatform:
    """The local platform of these settings, its endpoint guarded as they say."""
    config = EndpointConfig(
        api_key=settings.local_api_key.get_secret_value() if settings.local_api_key else None,
        allowed_hosts=tuple(settings.local_allowed_hosts),
        max_tokens=settings.local_max_tokens,
        wait_seconds=settings.local_queue_seconds,
    )
    return LocalPlatform(
        settings.data_dir / "local",
        port=settings.local_port if port is None else port,
        batch_size=batch_size,
        endpoint=config,
    )


@dataclass
class LocalRun:
    run: RunRecord
    candidates: list[CandidateRecord]


async def load_local_run(settings: Settings, key: str) -> LocalRun:
    """The run named ``key`` (number or id), refused unless it trained on this machine."""
    if not settings.db_path.exists():
        raise Refused(
            f"no run {key}: there is no sftbot database in {settings.data_dir} (set SFTBOT_DATA_DIR to the one you used)"
        )
    db = await Database.open(settings.db_path)
    try:
        run = await runs.get_run(db, key)
        if run is None:
            raise Refused(f"no run {key} in {settings.data_dir}: `sftbot runs` lists the runs there")
        cands = await runs.candidates(db, run.id)
    finally:
        await db.close()
    if run.platform != "local":
        raise Refused(
            f"run #{run.number} ran on {run.platform}: its model and deployment live there, not on this machine "
            f"(`sftbot show {run.number}` names them)"
        )
    return LocalRun(run=run, candidates=cands)


def shipped(found: LocalRun) -> CandidateRecord:
    """The model that ships (the final run, else the promoted candidate), refused until it has finished."""
    by_slot = {c.slot: c for c in found.candidates}
    run = found.run
    model = next((c for c in by_slot.values() if c.slot.is_final), None) or (by_slot.get(run.promoted) if run.promoted else None)
    if model is None or model.state is not CandidateState.COMPLETED:
        state = f"it is {run.phase.value}" if not run.phase.finished else f"it {run.phase.value} without one"
        raise Refused(
            f"run #{run.number} has no finished model yet ({state}); its model can be used once the final run "
            f"(or the promoted candidate) has completed: `sftbot show {run.number}`"
        )
    return model


# --- sftbot endpoint RUN ---


def _deployment(platform: LocalPlatform, found: LocalRun) -> DeploymentRecord:
    run = found.run
    record = platform.deployment_record(ids.deployment_id(run.id))
    if record is None:
        shipped(found)  # no model at all is the clearer refusal
        why = "deploy was off in its plan" if run.spec.deploy is False else f"it is {run.phase.value}"
        raise Refused(
            f"run #{run.number} was never deployed ({why}); `sftbot export {run.number}` writes its model for another server"
        )
    if record.torn_down_at is not None:
        raise Refused(
            f"run #{run.number}'s deployment {record.deployment_id} was torn down at {record.torn_down_at}; nothing serves it "
            f"any more. Its model is kept: `sftbot export {run.number} --format merged` writes it for another server"
        )
    return record


def curl_line(endpoint: str, model_string: str, *, keyed: bool, messages: list[dict[str, str]] | None = None) -> str:
    """The one-line request a person can paste (the deployment's own example prompt when given)."""
    ask = messages or [{"role": "user", "content": "Hello!"}]
    body = json.dumps({"model": model_string, "messages": ask, "max_tokens": 128}, ensure_ascii=False)
    auth = ' -H "Authorization: Bearer $SFTBOT_LOCAL_API_KEY"' if keyed else ""
    return f"curl -s {endpoint}/chat/completions -H 'Content-Type: application/json'{auth} -d {shlex.quote(body)}"


async def endpoint(settings: Settings, key: str, *, port: int | None, stop: asyncio.Event | None = None, out: Out = _say) -> int:
    """Serve one local run's deployed model in the foreground until Ctrl-C / SIGTERM (or ``stop``).

    The first signal stops it cleanly at any moment, loading or mid-generation: every
    generation is cancelled at its next token, the port is released, exit code 0. A second
    signal while that happens exits at once (130)."""
    quiet_ml_libraries()
    stop = stop or asyncio.Event()
    with stop_on_signals(stop, out):
        found = await load_local_run(settings, key)
        probe = local_platform(settings)
        record = _deployment(probe, found)
        await probe.close()
        # The port the deployment was made on, so the report's snippet works as printed.
        chosen = port if port is not None else (record.port or settings.local_port)
        platform = local_platform(settings, port=chosen)
        try:
            if await _start_serving(platform, found.run, record, out):
                await stop.wait()
            return 0
        finally:
            await platform.close()
            if platform.deployments.shared_with is None and stop.is_set():
                out(f"Stopped; port {chosen} is free.")


async def _start_serving(platform: LocalPlatform, run: RunRecord, record: DeploymentRecord, out: Out) -> bool:
    """Serve ``record`` and say how to call it; False when another sftbot process already does."""
    problem = await platform.host()
    if problem is not None:
        raise Refused(f"{problem} (or pass --port N; the report's snippet then needs that port)")
    endpoint_url = platform.deployments.endpoint
    if platform.deployments.shared_with is not None:
        out(
            f"Run #{run.number}'s model is already served at {endpoint_url} as {record.deployment_id!r} by sftbot "
            f"process {platform.deployments.shared_with} (it hosts this data dir's endpoint); nothing to start."
        )
        return False
    status = await platform.serving.get(record.deployment_id)
    if status.state is not DeploymentState.READY:
        raise Refused(f"run #{run.number}'s model cannot be served: {status.message}")
    out(
        f"Serving run #{run.number}'s fine-tuned model at {endpoint_url} as model {record.deployment_id!r} "
        f"(or {record.model!r}); Ctrl-C stops it."
    )
    if record.port is not None and record.port != platform.deployments.port:
        out(f"  note: the report's snippet names port {record.port}; use base_url {endpoint_url} instead")
    out(f"  Python: the snippet under 'Use it' in {Path(run.workspace) / 'final_report.md'}")
    keyed = platform.api_key is not None
    out(f"  curl:   {curl_line(endpoint_url, record.deployment_id, keyed=keyed, messages=platform.example_prompt(record.model))}")
    return True


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event, out: Out) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (said once); a second one while stopping exits at once with 130.

    Handlers stay installed until the block has finished cleaning up, so a Ctrl-C during the
    clean-up is the "force" one, not a KeyboardInterrupt in the middle of it."""
    loop = asyncio.get_running_loop()
    signalled = False

    def on_signal() -> None:
        nonlocal signalled
        if signalled:
            print("sftbot: forced stop", file=sys.stderr, flush=True)
            os._exit(130)  # the clean stop is already under way: skip it, as asked
        signalled = True
        out("Stopping: cancelling what is generating and releasing the port (Ctrl-C again to force)")
        stop.set()

    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
            handled.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests drive `stop` instead)
            pass
    try:
        yield
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


# --- sftbot export RUN ---


async def export(settings: Settings, key: str, *, fmt: ExportFormat, to: Path | None, out: Out = _say) -> int:
    """Write the run's shipped model in ``fmt``, record it, and list it in the run's report."""
    quiet_ml_libraries()
    found = await load_local_run(settings, key)
    run = found.run
    model = shipped(found)
    dest = (to or Path.cwd() / f"sftbot-run-{run.number}-{fmt}").expanduser().resolve()
    if dest.exists():
        raise Refused(f"{dest} already exists: choose another folder with --to, or remove it")
    platform = local_platform(settings)
    report = Path(run.workspace) / "final_report.md"
    db = await Database.open(settings.db_path)
    try:
        try:
            result = await platform.export(model.model or model.job_id, fmt, dest, name=f"sftbot-run-{run.number}")
        except ExportUnavailable as exc:
            raise Refused(str(exc)) from None
        async with db.write() as tx:
            written = Change(name=fmt, details=result.model_dump(mode="json"))
            await db.move_resource(tx, run.id, Ref(kind=ResourceKind.EXPORT, id=str(dest)), ResourceState.WRITTEN, written)
            await tx.audit(run_id=run.id, actor="sftbot", action="exported", details={"format": fmt, "path": str(dest)})
        if report.exists():  # list the export in the report (re-rendered from the store, like the run wrote it)
            fresh = await runs.get_run(db, run.id)
            assert fresh is not None
            summary = await summarize(db, platform, fresh)
            write_atomic(report, render_report(summary, audit=await db.audit_trail(run.id)))
    finally:
        await db.close()
        await platform.close()
    out(f"Exported run #{run.number}'s model ({model.job_id}) as {fmt} to {dest}: {', '.join(result.files)}")
    for line in result.serve:
        out(f"  serve it: {line}")
    if report.exists():
        out(f"  listed in {report}")
    return 0
