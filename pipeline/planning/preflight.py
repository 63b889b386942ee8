"""Preflight: what can be known to fail before a plan is posted, a run number spent or anything said in public.

One function for `sftbot plan`, `sftbot run` and Slack (``Runner.start`` asks it before a run
exists; `sftbot plan` before it plans). Each check ends in ``PreflightFailed``: one line naming
the problem and its fix, which the command line prints and Slack answers privately.

- the platform can take a run now (``Platform.ready``): on Fireworks the key and account, with one
  cheap authenticated read; on this machine the port its model would be served on;
- every named base model is one this platform can fine-tune (its live catalogue, or this
  machine's), with "did you mean" for a near miss and the models it could use;
- the dataset is readable: a local file this request may read, or a platform dataset that exists
  and is READY;
- a run that deploys: each base has a deployment shape on this account.

Slower questions (inspecting the rows, checking an evaluator, matching deployment shapes) stay in
the planner's survey, which runs once the run exists and answers in its thread.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from pipeline.dataset.access import LocalFiles, dataset_file
from pipeline.domain.platform import Platform, PlatformError
from pipeline.domain.spec import RunSpec, SpecError

SHOWN = 8  # models listed in the one line


class PreflightFailed(SpecError):
    """A request that cannot start: one line with the fix (nothing was created or posted for it)."""


async def preflight(platform: Platform, spec: RunSpec, files: LocalFiles) -> None:
    """Raise PreflightFailed for the first check ``spec`` fails on ``platform``; spends nothing."""
    try:
        await platform.ready(deploys=spec.deploy is not False)
        await check_models(platform, spec.base_models)
        for ref in (spec.dataset, spec.eval_dataset):
            if ref:
                await _check_dataset(platform, ref, files)
        if spec.deploy is not False and platform.facts.capabilities.deployment_shapes:
            await check_shapes(platform, spec.base_models)
    except PlatformError as exc:
        raise PreflightFailed(str(exc).rstrip(".")) from None


async def check_models(platform: Platform, models: Sequence[str]) -> None:
    """Every model in ``models`` can be fine-tuned on ``platform``; else the one line with near misses."""
    if not models:
        return
    listed = [m.id for m in await platform.models.list_models()]
    for model in dict.fromkeys(models):
        if model in listed or await platform.models.model_info(model) is not None:
            continue
        raise PreflightFailed(not_trainable(model, platform.facts.name, listed))


async def check_shapes(platform: Platform, models: Sequence[str]) -> None:
    """Each base has a deployment shape on this account, or the model it would train could not be
    served: said now (the platform's validated shapes for the account, e.g. Fireworks'
    match_for_model), not after the sweep."""
    for model in dict.fromkeys(models):
        shape = await platform.serving.shape(model)
        why = "no deployment shape for it here" if shape is None else await platform.serving.validate(model, shape)
        if why is not None:
            raise PreflightFailed(
                f"{model} cannot be deployed on this {platform.facts.name} account ({why}), so the "
                "model trained from it could not be served: choose another model=, or add deploy=no"
            )


def not_trainable(model: str, platform: str, listed: list[str]) -> str:
    """ "qwen3-8b is not a model local can fine-tune: …" with the closest names first."""
    short = {m.rsplit("/", 1)[-1]: m for m in listed}
    near = difflib.get_close_matches(model.rsplit("/", 1)[-1], list(short), n=1, cutoff=0.75)
    hint = f"did you mean {short[near[0]]}? " if near else ""
    shown = ", ".join(listed[:SHOWN]) + (f" and {len(listed) - SHOWN} more" if len(listed) > SHOWN else "")
    choices = f"the models it can fine-tune: {shown}" if listed else "it lists no models it can fine-tune"
    return f"{model} is not a model {platform} can fine-tune: {hint}{choices}. Change model= and start again"


async def _check_dataset(platform: Platform, ref: str, files: LocalFiles) -> None:
    if dataset_file(ref, files) is None:  # a platform dataset: it exists and is READY (raises PlatformError)
        await platform.datasets.check(ref)
