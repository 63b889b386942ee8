"""What `sftbot doctor` saved, used by the bot: a base whose addon deployments the account
refuses is evaluated by live merge in a later run, and the plan in the thread says so."""

from __future__ import annotations

import os
from pathlib import Path

from bot.doctor_results import save
from bot.testing.fireworks import FakeFireworks
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, BOB, MakeBot, find_element, has, in_thread, root_of, text_of
from pipeline.domain.authz import Policy
from pipeline.platforms.fireworks.platform import FireworksPlatform
from pipeline.platforms.fireworks.settings import FireworksSettings
from tests.paths import TEXT2SQL

BASE = "accounts/fireworks/models/qwen3-8b"


async def test_refused_addons_found_by_doctor_make_a_later_run_evaluate_by_live_merge(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    async with FakeFireworks(job_seconds=0.15, deployment_seconds=0.05) as fireworks:
        fireworks.addons_refused = {BASE}
        platform = FireworksPlatform(
            FireworksSettings(
                fireworks.api_key, fireworks.account, base_url=fireworks.base_url, poll_seconds=0.01, retry_base_delay=0.01
            )
        )
        try:
            checks = await platform.probes().run(["qwen3-8b"])
            (found,) = [c for c in checks if c.name == "deployments of qwen3-8b"]
            assert found.ok is False and found.facts["addons_refused"]  # doctor reports it ...
            save(Path(os.environ["SFTBOT_DATA_DIR"]), "free", checks)  # ... and keeps it where serve reads it
            bot = await bot_factory(platform, policy=Policy(approvers=[BOB]))
            await bot.driver.command(
                f"run dataset={TEXT2SQL} model=qwen3-8b parallel=3 eval=generate eval_examples=4", user=ALICE
            )
            root = await root_of(fake_slack)
            plan = await in_thread(fake_slack, root, has("Plan v1"))
            assert "refuses addon (multi-LoRA) deployments of qwen3-8b" in text_of(plan)  # said in the thread
            await bot.driver.click(plan, "sft_approve", user=BOB)
            await in_thread(fake_slack, root, lambda m: find_element(m["blocks"], "sft_promote") is not None)
        finally:
            await platform.close()
        run_id = (await bot.runner.get(1)).id
        created = fireworks.create_counts("deployments")
        assert {f"sftbot-{run_id}-eval-c{i}" for i in (1, 2, 3)} <= set(created)  # one live merge per candidate
        assert not any(fireworks.deployments[d].body.get("enableAddons") for d in created)
        assert not fireworks.create_counts("deployedModels")
