"""What one run looks like in Slack: messages, edits, uploads, and the thread as a person sees it.

    python bench/thread_shape.py --out bench/out/thread          # writes state.json + counts
    python <slackview>/slackview.py bench/out/thread/state.json --out bench/out/thread/png

One whole run through the real Bolt app, the real Fireworks platform code against the fake
Fireworks, and the fake Slack: /sft run → plan → Revise (v2) → Approve → sweep → promote →
final run → evaluate → deploy → report, with two approvers configured and self-approval
off, the way a team that watches spend runs the bot. It prints what the issue about Slack
reading measures (bot messages, chat.update edits, uploads, the longest code-block line)
and writes the fake's state in the JSON slackview reads, so the thread can be rendered at
480 px and 420 px and its height compared before and after a change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.testing.fireworks import FakeFireworks  # noqa: E402
from bot.testing.slack import FakeSlack  # noqa: E402
from bot.testing.slack_app import ALICE, BOB, CAROL, CHANNEL, has, in_thread, make_bot, root_of, text_of  # noqa: E402
from pipeline.domain.authz import Policy  # noqa: E402
from pipeline.platforms.fireworks.platform import FireworksPlatform  # noqa: E402
from pipeline.store.db import Database  # noqa: E402

# The repository's bundled datasets (read as data: bench code imports nothing from tests/).
DATASETS = ROOT / "tests" / "data" / "datasets"
RUN = f"run dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b"
NAMES = {"UBOT": "sftbot", ALICE: "alice", BOB: "bob", CAROL: "carol", CHANNEL: "ml-team"}


def longest_code_line(text: str) -> int:
    """The longest line inside ``` blocks (what wraps in a 480 px thread pane)."""
    parts = text.split("```")
    return max((len(line) for block in parts[1::2] for line in block.splitlines()), default=0)


async def one_run(workdir: Path) -> dict[str, Any]:
    async with FakeSlack() as slack, FakeFireworks(job_seconds=0.15, deployment_seconds=0.05) as fireworks:
        platform = FireworksPlatform(
            fireworks.api_key, fireworks.account, base_url=fireworks.base_url, poll_seconds=0.01, retry_base_delay=0.01
        )
        db = await Database.open(workdir / "bot.sqlite3")
        policy = Policy(approvers=[BOB, CAROL], allow_self_approval=False)
        bot = await make_bot(
            slack, db, platform, runs_dir=workdir / "runs", policy=policy, live_interval=0.05, dataset_dir=DATASETS
        )
        try:
            await bot.driver.command(RUN, user=ALICE)
            root = await root_of(slack)
            plan = await in_thread(slack, root, has("Plan v1"))
            await bot.driver.click(plan, "sft_revise", user=BOB, trigger="T-REVISE")
            view = await slack.wait_for(lambda: next(iter(slack.views.values()), None))
            await bot.driver.submit(view, user=BOB, epochs="2")
            v2 = await in_thread(slack, root, has("Plan v2"))
            await bot.driver.click(v2, "sft_approve", user=CAROL)
            gate = await in_thread(slack, root, lambda m: bool(_element(m, "sft_promote")))
            await bot.driver.click(gate, "sft_promote", user=BOB)
            await slack.wait_for(lambda: next((m for m in slack.roots(CHANNEL) if "✅" in text_of(m)), None))
            await bot.settle()
            await slack.wait_for(lambda: any(u.filename == "final_report.md" for u in slack.uploads()) or None)
            await bot.settle()
        finally:
            await bot.close()
            await platform.close()
            await db.close()
        return measure(slack, root["ts"])


def _element(message: dict[str, Any], action_id: str) -> bool:
    return any(
        isinstance(el, dict) and el.get("action_id") == action_id
        for b in message["blocks"]
        for el in [*(b.get("elements") or []), *([b["accessory"]] if "accessory" in b else [])]
    )


def measure(slack: FakeSlack, root_ts: str) -> dict[str, Any]:
    thread = slack.thread(CHANNEL, root_ts)
    bot_msgs = [m for m in slack.messages.get(CHANNEL, []) if m.bot_id]
    posted = [c for c in slack.calls if c["method"] == "chat.postMessage"]
    edits = [c for c in slack.calls if c["method"] == "chat.update"]
    last = thread[-1]
    first_text = {m.ts: (m.text or "")[:40] for m in bot_msgs}
    per_message: dict[str, int] = {}
    for c in edits:
        label = first_text.get(str(c["args"].get("ts")), "?")
        per_message[label] = per_message.get(label, 0) + 1
    return {
        "bot_messages_in_channel": len(bot_msgs),
        "thread_messages": len(thread),
        "chat_postMessage": len(posted),
        "chat_update": len(edits),
        "edits_per_message": per_message,
        "uploads": len(slack.uploads()),
        "ephemerals": len(slack.ephemeral),
        "longest_code_line": max((longest_code_line(m.view()["rendered"]) for m in bot_msgs), default=0),
        "last_in_thread": (last["text"] or "")[:80],
        "state": state_for_slackview(slack),
    }


def state_for_slackview(slack: FakeSlack) -> dict[str, Any]:
    messages = []
    for channel, msgs in slack.messages.items():
        for m in msgs:
            item: dict[str, Any] = {"channel": channel, "ts": m.ts, "user": m.user, "text": m.text, "blocks": m.blocks}
            if m.thread_ts:
                item["thread_ts"] = m.thread_ts
            if m.files:
                item["files"] = [{"name": f.get("name"), "title": f.get("title")} for f in m.files]
            messages.append(item)
    return {
        "channel_name": "ml-team",
        "bot_name": "sftbot",
        "bot_user": "UBOT",
        "names": NAMES,
        "messages": messages,
        "ephemerals": [
            {"channel": e.get("channel"), "user": e.get("user"), "text": e.get("text"), "blocks": e.get("blocks") or []}
            for e in slack.ephemeral
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "thread")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(one_run(Path(tmp)))
    state = result.pop("state")
    (args.out / "state.json").write_text(json.dumps(state, indent=1, ensure_ascii=False), encoding="utf-8")
    (args.out / "counts.json").write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    for key, value in result.items():
        print(f"{key:>24}: {value}")
    print(f"state for slackview: {args.out / 'state.json'}")


if __name__ == "__main__":
    main()
