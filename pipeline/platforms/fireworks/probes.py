"""`sftbot doctor`'s free tier on Fireworks: reads and ``validateOnly`` creates, which cost nothing.

Each probe says what sftbot assumes, what the account answered and what sftbot will do. Only
a live account settles these (see each probe's source); the results are saved by ``bot/doctor.py``
and read by the bot (a base whose addon deployments are refused is evaluated by live merge).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fireworks import AsyncFireworks

from pipeline.domain.checks import Check
from pipeline.domain.platform import PlatformError
from pipeline.platforms.fireworks import wire
from pipeline.platforms.fireworks.account import check_account
from pipeline.platforms.fireworks.calls import Caller
from pipeline.platforms.fireworks.catalog import PUBLIC_ACCOUNT
from pipeline.platforms.fireworks.serving import FireworksServing

Probe = Callable[[], Awaitable[Check]]
DOCTOR_DEPLOYMENT = "sftbot-doctor-probe"  # validateOnly: never created


class FreeProbes:
    """The free tier's Fireworks checks, on one platform's clients."""

    def __init__(self, control: AsyncFireworks, calls: Caller, serving: FireworksServing, *, account: str) -> None:
        self.control, self.calls, self.serving, self.account = control, calls, serving, account

    async def run(self, bases: Sequence[str]) -> list[Check]:
        probes: list[Probe] = [self.account_state, self.catalogue]
        probes += [functools.partial(self.addons, base) for base in bases]
        probes += [self.adapter_filter, self.past_jobs, self.past_evaluations]
        return [await _safely(p) for p in probes]

    async def account_state(self) -> Check:
        found = await check_account(self.control, self.calls, self.account)
        return Check(
            area="fireworks",
            name="account",
            assumption="FIREWORKS_API_KEY belongs to FIREWORKS_ACCOUNT_ID and the account can spend",
            observed=f"account {self.account}: state {found['state']}, suspendState {found['suspend_state'] or 'not given'}",
            action="runs start on this account (every run's preflight asks again)",
            ok=True,
        )

    async def catalogue(self) -> Check:
        models = await self.calls.run(
            "list base models", lambda: _all(self.control.models.list(account_id=PUBLIC_ACCOUNT, page_size=200))
        )
        current = {_short(m): (m.model_extra or {}).get("supervisedLoraTunable") for m in models}
        old = {_short(m): bool(m.tunable or (m.base_model_details and m.base_model_details.tunable)) for m in models}
        differ = sorted(n for n in current if current[n] is not None and bool(current[n]) != old[n])
        missing = sorted(n for n, v in current.items() if v is None)
        tunable = sorted(_short(m) for m in models if wire.tunable(m))
        return Check(
            area="fireworks",
            name="catalogue",
            assumption="supervisedLoraTunable marks the bases sftbot can fine-tune (tunable/baseModelDetails.tunable are deprecated)",
            observed=(
                f"{len(models)} public models, {len(tunable)} tunable; the deprecated flags disagree on "
                f"{len(differ)} ({', '.join(differ[:6]) or 'none'}); {len(missing)} without supervisedLoraTunable"
            ),
            action="lists and plans only the tunable ones, by supervisedLoraTunable (the deprecated flags where it is absent)",
            ok=True,
            facts={"tunable": tunable, "disagree": differ},
        )

    async def addons(self, base: str) -> Check:
        """The base's live-merge and multi-LoRA shapes, each tried with a validateOnly create."""
        merge = await self._validate(base, addons=False)
        addon = await self._validate(base, addons=True)
        ok = addon is None
        return Check(
            area="fireworks",
            name=f"deployments of {base}",
            assumption="candidates are evaluated on one multi-LoRA deployment per base (addons), the final model by live merge",
            observed=f"live merge: {merge or 'accepted (validateOnly)'}; addons: {addon or 'accepted (validateOnly)'}",
            action=(
                "evaluates candidates on a shared addon deployment"
                if ok
                else "evaluates each candidate of this base by live merge (one short-lived deployment each), and says so in the plan"
            ),
            ok=ok and merge is None,
            facts={"base": base, "addons_refused": not ok, "live_merge_refused": merge is not None},
        )

    async def _validate(self, base: str, *, addons: bool) -> str | None:
        """None when a validateOnly create of the base's shape is accepted, else why not."""
        try:
            shape = await self.serving.shape(base, addons=addons)
        except PlatformError as exc:
            return f"no shape answer ({exc})"
        if shape is None:
            return "no validated shape for this account"
        options: dict[str, Any] = {"enable_addons": True, "disable_speculative_decoding": True} if addons else {}
        try:
            await self.calls.run(
                f"validate a deployment of {base}",
                lambda: self.control.deployments.create(
                    base_model=wire.base_model_name(base),
                    deployment_id=DOCTOR_DEPLOYMENT,
                    deployment_shape=shape.name,
                    validate_only=True,  # SDK resources/deployments.py:168-169: returns what would be created
                    **options,
                ),
            )
        except PlatformError as exc:
            return f"refused on {shape.name} ({exc})"
        return None

    async def adapter_filter(self) -> Check:
        dep = f'deployment="accounts/{self.account}/deployments/{DOCTOR_DEPLOYMENT}"'
        try:
            await self.calls.run("list adapter loads", lambda: _all(self.control.lora.list(filter=dep, page_size=1)))
            observed, ok = f"filter {dep} accepted", True
        except PlatformError as exc:
            observed, ok = f"filter refused ({exc})", False
        return Check(
            area="fireworks",
            name="adapter list filter",
            assumption="lora.list takes an AIP-160 filter on the deployment (unverified: SDK resources/lora.py:121-190)",
            observed=observed,
            action="matches (model, deployment) itself on every listed load either way",
            ok=ok,
        )

    async def past_jobs(self) -> Check:
        jobs = await self.calls.run(
            "list fine-tuning jobs", lambda: _all(self.control.supervised_fine_tuning_jobs.list(page_size=20), limit=20)
        )
        costed = [j for j in jobs if j.estimated_cost is not None]
        return Check(
            area="fireworks",
            name="past fine-tuning jobs",
            assumption="a job reports estimatedCost (SDK types/supervised_fine_tuning_job.py:151-152)",
            observed=f"{len(jobs)} recent jobs, {len(costed)} with estimatedCost",
            action="prices a run from its dated table and shows each job's estimatedCost beside it when given",
            ok=None if not jobs else bool(costed),
        )

    async def past_evaluations(self) -> Check:
        jobs = await self.calls.run(
            "list evaluation jobs", lambda: _all(self.control.evaluation_jobs.list(page_size=20), limit=20)
        )
        return Check(
            area="fireworks",
            name="past evaluation jobs",
            assumption="a hosted evaluation job's rows carry evals.score / eval_details.score (Eval Protocol's writer)",
            observed=f"{len(jobs)} recent evaluation jobs (their rows are read by the GPU tier's hosted evaluation)",
            action="reads evaluation_result, evals and eval_details score keys",
            ok=None,
        )


def _short(model: Any) -> str:
    return str(model.name or "").rsplit("/", 1)[-1]


async def _all(pages: Any, limit: int = 10_000) -> list[Any]:
    out: list[Any] = []
    async for item in pages:
        out.append(item)
        if len(out) >= limit:
            break
    return out


async def _safely(probe: Probe) -> Check:
    """A probe that could not run is a failed check with the platform's own sentence."""
    try:
        return await probe()
    except PlatformError as exc:
        name = getattr(getattr(probe, "func", probe), "__name__", "check").replace("_", " ")
        return Check(area="fireworks", name=name, assumption="", observed=str(exc), action="fix this first", ok=False)
