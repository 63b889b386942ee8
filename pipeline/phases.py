"""The work of each phase. Each function is idempotent given the ids it recorded before.

``WORK[phase](runner, run)`` does the phase's work and returns the event that ends it plus
the run fields to change; the runner commits both with the audit event.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import ids
from pipeline.catalog import BaseModelInfo, find_model
from pipeline.dataset.convert import convert_dataset
from pipeline.dataset.demo import resolve_dataset_ref
from pipeline.dataset.inspect import inspect_dataset
from pipeline.dataset.report import InspectionReport
from pipeline.dataset.split import split_dataset
from pipeline.evaluation.hooks import score_candidates
from pipeline.evaluation.strategy import EvaluatorBroken, Fallback, setup_evaluator
from pipeline.events import EventKind
from pipeline.jobs import JobWatch, load_points
from pipeline.machine import Event
from pipeline.plan import Plan, make_plan
from pipeline.platforms.base import ChatMessage, DeploymentState, JobRequest, JobState, PlatformError
from pipeline.scoreboard import rank
from pipeline.spec import EvalKind, Evaluation, SpecError
from pipeline.store import runs as q
from pipeline.store.records import CandidateRecord, Question, RunRecord

if TYPE_CHECKING:
    from pipeline.runner import Runner

Work = Callable[["Runner", RunRecord], Awaitable[tuple[Event, dict[str, Any]]]]


def _ws(run: RunRecord) -> Path:
    path = Path(run.workspace)
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_local_file(ref: str) -> bool:
    return Path(resolve_dataset_ref(ref)).is_file()


async def stage_file(r: Runner, ref: str, dest: Path) -> Path:
    """A user-named dataset as a local file, fetched once per run (cached in the workspace)."""
    if dest.exists():
        return dest
    if is_local_file(ref):
        tmp = dest.with_suffix(".part")
        await asyncio.to_thread(shutil.copyfile, resolve_dataset_ref(ref), tmp)
        tmp.replace(dest)
        return dest
    await r.platform.check_dataset(ref)
    return await r.platform.stage_dataset(ref, dest)


async def _model_lookup(r: Runner) -> Callable[[str], BaseModelInfo | None]:
    try:
        known = {m.id: m for m in await r.platform.list_models()}
    except PlatformError:
        known = {}
    return lambda model: known.get(model) or find_model(model)


async def _report(ws: Path, source: Path) -> InspectionReport:
    cached = ws / "inspection.json"
    if cached.exists():
        return InspectionReport.model_validate_json(cached.read_text(encoding="utf-8"))
    report = await asyncio.to_thread(inspect_dataset, source)
    cached.write_text(report.model_dump_json(indent=1), encoding="utf-8")
    return report


def _blocking_message(ref: str, report: InspectionReport) -> str:
    parts = []
    for g in report.problems:
        if g.blocking:
            where = ", ".join(f"line {p.line}: {p.message}" for p in g.examples[:3])
            parts.append(f"{g.title} ({g.count:,}{'; ' + where if where else ''})")
    return f"Dataset {ref} cannot be trained on: " + "; ".join(parts) + ". Nothing was spent."


async def inspect_and_plan(r: Runner, run: RunRecord) -> tuple[Event, dict[str, Any]]:
    """Phase 1-2: stage and inspect the data (once), ask what is missing, propose plan n+1."""
    spec = run.spec
    question_no = (run.question.number + 1) if run.question else len(await r.db.gate_decisions(run.id)) + 1
    if not spec.dataset:
        q_ = Question(what="dataset", text="Which dataset should I train on?", number=question_no)
        return Event.NEEDS_INPUT, {"question_json": q_.model_dump_json()}
    ws = _ws(run)
    source = await stage_file(r, spec.dataset, ws / "source.jsonl")
    report = await _report(ws, source)
    if report.blocking:
        raise ValueError(_blocking_message(spec.dataset, report))
    lookup = await _model_lookup(r)
    models = [m.id for m in await _safe_models(r)]
    if not spec.base_models:
        q_ = Question(what="base_model", text="Which base model should I fine-tune?", choices=models, number=question_no)
        return Event.NEEDS_INPUT, {"question_json": q_.model_dump_json()}
    unknown = [m for m in spec.base_models if models and m not in models and lookup(m) is None]
    if unknown:
        q_ = Question(
            what="base_model",
            text=f"I don't know the base model {unknown[0]} on {r.platform.name}. Which base model should I fine-tune?",
            choices=models,
            number=question_no,
        )
        return Event.NEEDS_INPUT, {"question_json": q_.model_dump_json()}
    data = await training_data(ws, report, spec.convert)
    if spec.evaluation is None and r.config.ask_evaluation:
        q_ = Question(
            what="evaluation",
            text="How should I judge the candidates? Validation loss is cheapest; your own evaluator or one I generate from the data checks the answers.",
            choices=["loss", "evaluator", "generate"],
            number=question_no,
        )
        return Event.NEEDS_INPUT, {"question_json": q_.model_dump_json()}
    evaluation = spec.evaluation or Evaluation(kind=EvalKind.LOSS)
    try:
        setup = await setup_evaluator(evaluation, data=data, workspace=ws, evaluator_dir=r.config.evaluator_dir)
    except EvaluatorBroken as exc:
        q_ = Question(
            what="evaluator_failed",
            text=f"Your evaluator failed when I tried it on the data's own answers: {exc} "
            "Should I continue with validation loss, or cancel? Nothing has been spent.",
            choices=["loss", "cancel"],
            number=question_no,
        )
        return Event.NEEDS_INPUT, {"question_json": q_.model_dump_json()}
    except SpecError as exc:
        q_ = Question(
            what="evaluation",
            text=f"{exc}. How should I judge the candidates instead?",
            choices=["loss", "evaluator", "generate"],
            number=question_no,
        )
        return Event.NEEDS_INPUT, {"question_json": q_.model_dump_json()}
    notes: list[str] = []
    if isinstance(setup, Fallback):
        spec = spec.model_copy(update={"evaluation": Evaluation(kind=EvalKind.LOSS)})
        notes.append(setup.reason)
        setup = None
    tps = getattr(r.platform, "measured_tokens_per_second", None)
    plan = make_plan(
        spec,
        report,
        platform=r.platform.name,
        version=run.plan_version + 1,
        model_info=lookup,
        # A platform may know what the machine can hold (the local one: 1 on a small CPU box).
        default_parallel=int(
            r.config.default_parallel
            or getattr(r.platform, "default_parallel", None)
            or getattr(r.platform, "max_parallel", None)
            or 6
        ),
        local_tokens_per_second=tps(spec.base_models[0]) if callable(tps) else None,
    )
    plan = plan.model_copy(update={"evaluator": setup, "warnings": [*notes, *plan.warnings]})
    async with r.db.write() as tx:
        await q.save_plan(tx, run.id, plan)
    (ws / f"plan-v{plan.version}.json").write_text(plan.model_dump_json(indent=1), encoding="utf-8")
    return Event.PLANNED, {"plan_version": plan.version, "estimated_usd": plan.cost.total_usd, "question_json": None}


async def training_data(ws: Path, report: InspectionReport, convert: bool | None) -> Path:
    """The file training uses: the source, or its conversion (written once, never in place)."""
    source = ws / "source.jsonl"
    if not report.conversions or convert is False:
        return source
    data = ws / "converted.jsonl"
    if not data.exists():
        tmp = ws / "converted.jsonl.part"
        await asyncio.to_thread(convert_dataset, source, tmp)
        tmp.replace(data)
    return data


async def _safe_models(r: Runner) -> list[BaseModelInfo]:
    try:
        return await r.platform.list_models()
    except PlatformError:
        return []


async def current_plan(r: Runner, run: RunRecord) -> Plan:
    plan = await q.get_plan(r.db, run.id, run.plan_version)
    if plan is None:
        raise ValueError(f"run #{run.number} has no plan v{run.plan_version}")
    return plan


async def prepare_data(r: Runner, run: RunRecord, plan: Plan) -> dict[str, str]:
    """Convert, split and upload the run's data with run-derived dataset ids (idempotent)."""
    ws = _ws(run)
    report = await _report(ws, ws / "source.jsonl")
    data = await training_data(ws, report, run.spec.convert)
    split_dir = ws / "split"
    marker = split_dir / "split.json"
    if not marker.exists():
        carve: dict[str, Any] = {} if plan.eval_dataset is None else {"test_fraction": 0.0, "min_test": 0}
        result = await asyncio.to_thread(split_dataset, data, out_dir=split_dir, hp_samples=plan.hp_samples, **carve)
        marker.write_text(result.model_dump_json(), encoding="utf-8")
    split = json.loads(marker.read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    files = {
        "train": split["train_path"],
        "hp": split["hp_train_path"] if split["hp_subsampled"] else None,
        "test": split["test_path"],
    }
    counts = {"train": split["train"], "hp": split["hp_train"] if split["hp_subsampled"] else 0, "test": split["test"]}
    uploaded = {res.resource_id: res for res in await r.db.resources(run.id) if res.kind == "dataset" and res.state == "ready"}
    for role, path in files.items():
        if not path or not counts[role]:
            continue
        dataset_id = ids.dataset_id(run.id, role)
        if dataset_id in uploaded and uploaded[dataset_id].name:  # the final run reuses the sweep's uploads
            names[role] = uploaded[dataset_id].name
            continue
        async with r.db.write() as tx:
            await r.db.record_resource(tx, kind="dataset", resource_id=dataset_id, run_id=run.id, state="recorded")
        await r.cp(f"dataset:{dataset_id}:recorded")
        info = await r.platform.upload_dataset(dataset_id, Path(path), examples=counts[role])
        async with r.db.write() as tx:
            await r.db.record_resource(tx, kind="dataset", resource_id=dataset_id, run_id=run.id, name=info.name, state="ready")
        await r.cp(f"dataset:{dataset_id}:ready")
        names[role] = info.name
    if plan.eval_dataset:
        if not is_local_file(plan.eval_dataset):
            info = await r.platform.check_dataset(plan.eval_dataset)
            names["eval"] = info.name
        else:
            dataset_id = ids.dataset_id(run.id, "eval")
            info = await r.platform.upload_dataset(dataset_id, Path(resolve_dataset_ref(plan.eval_dataset)), examples=0)
            names["eval"] = info.name
    else:
        names["eval"] = names.get("test", "")
    return names


def _watch(r: Runner, run: RunRecord, kind: EventKind) -> JobWatch:
    async def notify(what: str, cands: list[CandidateRecord]) -> None:
        fresh = await r.get(run.id)
        if what.startswith("stall:"):
            _, idx, minutes = what.split(":")
            label = next((c.label for c in cands if str(c.idx) == idx), idx)
            await r.publish(
                EventKind.STALL_WARNING,
                fresh,
                candidates=cands,
                text=f"{label}: no progress for {minutes} minutes (still waiting; not failed)",
            )
        else:
            await r.publish(kind, fresh, candidates=cands)

    return JobWatch(
        db=r.db,
        platform=r.platform,
        run_id=run.id,
        workspace=_ws(run),
        checkpoint=r.cp,
        notify=notify,
        poll_seconds=r.config.poll_seconds,
        stall_seconds=r.config.stall_minutes * 60,
    )


async def sweep(r: Runner, run: RunRecord) -> tuple[Event, dict[str, Any]]:
    """Phase 3: train every candidate on the HP split, at most N active at once."""
    plan = await current_plan(r, run)
    names = await prepare_data(r, run, plan)
    train = names.get("hp") or names["train"]
    requests: dict[int, JobRequest] = {}
    async with r.db.write() as tx:
        for job in plan.candidates:
            job_id = ids.job_id(run.id, job.index)
            await q.insert_candidate(
                tx,
                CandidateRecord(
                    run_id=run.id,
                    idx=job.index,
                    job_id=job_id,
                    base_model=job.base_model,
                    lora_rank=job.lora_rank,
                    learning_rate=job.learning_rate,
                    epochs=job.epochs,
                    train_samples=job.train_samples,
                ),
            )
            requests[job.index] = JobRequest(
                job_id=job_id,
                base_model=job.base_model,
                dataset=train,
                eval_dataset=names.get("eval") or None,
                epochs=job.epochs,
                lora_rank=job.lora_rank,
                learning_rate=job.learning_rate,
                output_model=job_id,
                display_name=f"sftbot run {run.number} candidate {job.index}",
            )
    cands = await _watch(r, run, EventKind.SCOREBOARD_CHANGED).run(requests, max_active=plan.max_parallel)
    done = [c for c in cands if c.state is JobState.COMPLETED]
    if not done:
        errors = "; ".join(f"{c.label}: {c.message or c.raw_state or c.state.value}" for c in cands)
        raise PlatformError(f"every candidate failed ({errors})")
    await score_candidates(r, run, plan)
    return Event.SWEEP_DONE, {}


async def request_promotion(r: Runner, run: RunRecord) -> None:
    """Phase 4 entry: the ranked scoreboard and the loss-curve picture for the gate."""
    from pipeline.curves import plot_losses

    cands = [c for c in await q.candidates(r.db, run.id) if c.idx > 0]
    ranked = rank(cands)
    ws = _ws(run)
    png = ws / "loss_curves.png"
    await asyncio.to_thread(
        plot_losses, {c.label: load_points(ws, c.job_id) for c in cands}, png, title=f"Run #{run.number} sweep"
    )
    best = ranked[0] if ranked else None
    if best is not None and best.score is not None:
        text = f"Winner by evaluator score: {best.label} (mean score {best.score:.3f}, val loss {best.val_loss if best.val_loss is not None else float('nan'):.4f})"
    elif best is not None and best.val_loss is not None:
        text = f"Winner by validation loss: {best.label} (val loss {best.val_loss:.4f})"
    else:
        text = "No candidate reported a validation loss."
    note = await r.db.get_ref(run.id, "evaluator_error")
    if note:
        text = f"{note}\n{text}"
    await r.publish(EventKind.PROMOTION_REQUESTED, run, candidates=ranked, files={"loss_curves.png": str(png)}, text=text)


async def final_train(r: Runner, run: RunRecord) -> tuple[Event, dict[str, Any]]:
    """Phase 5: the winner's config on the full train split."""
    plan = await current_plan(r, run)
    cands = {c.idx: c for c in await q.candidates(r.db, run.id)}
    winner = cands[run.winner or 0]
    assert plan.final is not None
    names = await prepare_data(r, run, plan)
    job_id = ids.job_id(run.id, 0)
    async with r.db.write() as tx:
        await q.insert_candidate(
            tx,
            CandidateRecord(
                run_id=run.id,
                idx=0,
                job_id=job_id,
                base_model=winner.base_model,
                lora_rank=winner.lora_rank,
                learning_rate=winner.learning_rate,
                epochs=plan.final.epochs,
                train_samples=plan.final.train_samples,
            ),
        )
    req = JobRequest(
        job_id=job_id,
        base_model=winner.base_model,
        dataset=names["train"],
        eval_dataset=names.get("eval") or None,
        epochs=plan.final.epochs,
        lora_rank=winner.lora_rank,
        learning_rate=winner.learning_rate,
        output_model=job_id,
        display_name=f"sftbot run {run.number} final",
    )
    result = await _watch(r, run, EventKind.FINAL_PROGRESS).run({0: req}, max_active=1)
    final = result[0]
    if final.state is not JobState.COMPLETED:
        raise PlatformError(f"the final run {job_id} {final.state.value}: {final.message or final.raw_state}")
    return Event.FINAL_DONE, {}


async def final_candidate(r: Runner, run: RunRecord) -> CandidateRecord:
    """The model that ships: the final run, or the promoted candidate when it was skipped."""
    cands = {c.idx: c for c in await q.candidates(r.db, run.id)}
    return cands.get(0) or cands[run.winner or 0]


async def evaluate(r: Runner, run: RunRecord) -> tuple[Event, dict[str, Any]]:
    """Phase 6: validation loss of the shipped model (evaluator strategies plug in here)."""
    from pipeline.evaluation.hooks import evaluate_final

    final = await final_candidate(r, run)
    summary = await evaluate_final(r, run, final)
    await r.publish(EventKind.EVALUATION_DONE, await r.get(run.id), candidates=[final], text=summary)
    return Event.EVALUATED, {}


async def deploy(r: Runner, run: RunRecord) -> tuple[Event, dict[str, Any]]:
    """Phase 7a: deploy the model (live merge), wait for READY, then one real completion."""
    final = await final_candidate(r, run)
    model = final.model or final.job_id
    dep_id = ids.deployment_id(run.id)
    async with r.db.write() as tx:
        await r.db.record_resource(
            tx, kind="deployment", resource_id=dep_id, run_id=run.id, state="recorded", details={"model": model}
        )
    await r.cp(f"deployment:{dep_id}:recorded")
    status = await r.platform.create_deployment(dep_id, model)
    await r.cp(f"deployment:{dep_id}:created")
    deadline = time.monotonic() + r.config.deploy_timeout_seconds
    delay = r.config.poll_seconds
    while status.state is DeploymentState.CREATING:
        if time.monotonic() > deadline:
            raise PlatformError(
                f"deployment {dep_id} was not ready after {r.config.deploy_timeout_seconds / 60:.0f} minutes; it is still up"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, r.config.poll_seconds * 4)
        status = await r.platform.get_deployment(dep_id)
    if status.state is not DeploymentState.READY:
        raise PlatformError(f"deployment {dep_id} {status.state.value}: {status.message or 'no message'}")
    # READY is not proof of serving (reference/fireworks.md §7.3): send one real completion.
    reply = await r.platform.chat(status.model_string, [ChatMessage(role="user", content="Say OK.")], max_tokens=16)
    async with r.db.write() as tx:
        await r.db.record_resource(
            tx, kind="deployment", resource_id=dep_id, run_id=run.id, name=status.model_string, state="ready"
        )
        await tx.execute(
            "UPDATE resources SET details_json=? WHERE kind='deployment' AND resource_id=?",
            (json.dumps({**status.model_dump(mode="json"), "smoke_test": reply[:200]}), dep_id),
        )
    snippet = r.platform.snippet(status)
    await r.publish(
        EventKind.DEPLOYED,
        await r.get(run.id),
        candidates=[final],
        text=f"Deployed {status.model} as {dep_id}",
        data={"deployment": status.model_dump(mode="json"), "snippet": snippet.code},
    )
    return Event.DEPLOYED, {}


async def report(r: Runner, run: RunRecord) -> tuple[Event, dict[str, Any]]:
    """Phase 7b: final_report.md and the loss curves into the workspace."""
    from pipeline.report import write_report

    paths, actual = await write_report(r, run)
    fresh = await r.get(run.id)
    await r.publish(EventKind.REPORT_READY, fresh, files=paths, text=f"Report ready: {paths['final_report.md']}")
    return Event.REPORTED, {"actual_usd": actual}


async def cancel_jobs(r: Runner, run: RunRecord) -> None:
    """Cancel this run's active jobs only (never anything the bot did not create)."""
    for c in await q.candidates(r.db, run.id):
        if c.submit_state == "planned" or c.state.terminal:
            continue
        try:
            status = await r.platform.cancel_job(c.job_id)
        except PlatformError as exc:
            await r.db.audit(
                run_id=run.id, actor="sftbot", action="cancel_job_failed", details={"job_id": c.job_id, "error": str(exc)}
            )
            continue
        async with r.db.write() as tx:
            await q.update_candidate(
                tx, run.id, c.idx, status.model_copy(update={"state": JobState.CANCELLED}), progressed=True, stalled=False
            )
            await tx.audit(run_id=run.id, actor="sftbot", action="job_cancelled", details={"job_id": c.job_id})


WORK: dict[Any, Work] = {}


def _register() -> None:
    from pipeline.machine import Phase

    WORK.update(
        {
            Phase.INSPECTING: inspect_and_plan,
            Phase.SWEEPING: sweep,
            Phase.FINAL_TRAINING: final_train,
            Phase.EVALUATING: evaluate,
            Phase.DEPLOYING: deploy,
            Phase.REPORTING: report,
        }
    )


_register()
