"""What one run looks like in Slack: messages, edits, uploads, who is notified, and how tall it is.

    python bench/thread_shape.py --out bench/out/thread                      # counts + state.json
    python bench/thread_shape.py --slackview ~/shared/tools/slackview/slackview.py   # + PNGs and heights
    SLACKVIEW=…/slackview.py python bench/thread_shape.py                  # the same

Two whole runs, each through the real Bolt app, the real Fireworks platform code against the
fake Fireworks, and the fake Slack, with two approvers configured and self-approval off:

- ``simple``: /sft run on one base model → plan → Revise (v2) → Approve → sweep → promote →
  final run → evaluate → deploy → report (the scenario this bench has always run);
- ``realistic``: 2 base models × 2 learning rates judged by a generated evaluator (the fake
  Fireworks answers like a tuned model on most held-out prompts and like its base on fewer),
  one revision, then the same way to the end.

For each it prints what the Slack issues measure (bot messages, edits, uploads, the longest
code-block line, notifying messages per person) and writes the thread in the JSON slackview
reads. With slackview (a dev tool outside this repository: ``--slackview PATH`` or the
SLACKVIEW environment variable; set it up once with its ``setup.sh``) it renders the
finished thread and every decision message as it was posted, at 480 px and 420 px, and prints
each message's height and how far down its primary button is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.slack_heights import heights, render  # noqa: E402
from bot.testing.fireworks import FakeFireworks  # noqa: E402
from bot.testing.slack import FakeSlack  # noqa: E402
from bot.testing.slack_app import ALICE, BOB, CAROL, CHANNEL, Bot, fast_runner, has, in_thread, make_bot, root_of, text_of  # noqa: E402
from pipeline.domain.authz import Policy  # noqa: E402
from pipeline.platforms.fireworks.platform import FireworksPlatform  # noqa: E402
from pipeline.platforms.fireworks.settings import FireworksSettings  # noqa: E402
from pipeline.store.db import Database  # noqa: E402

# The repository's bundled datasets (read as data: bench code imports nothing from tests/).
DATASETS = ROOT / "tests" / "data" / "datasets"
TEXT2SQL = DATASETS / "text2sql_dataset.jsonl"
SCENARIOS = {
    "simple": f"run dataset={TEXT2SQL} model=qwen3-8b",
    "realistic": f"run dataset={TEXT2SQL} model=qwen3-8b,qwen3-32b lr=1e-4,5e-5 eval=generate",
}
NAMES = {"UBOT": "sftbot", ALICE: "alice", BOB: "bob", CAROL: "carol", CHANNEL: "ml-team"}
# How often each model answers a held-out prompt right in the realistic run (the rest echo).
SKILL = {"c1": 0.9, "c2": 0.7, "c3": 0.8, "c4": 0.6, "final": 0.9, "base": 0.4}


def longest_code_line(text: str) -> int:
    """The longest line inside ``` blocks (what wraps in a 480 px thread pane)."""
    parts = text.split("```")
    return max((len(line) for block in parts[1::2] for line in block.splitlines()), default=0)


def sql_answers() -> Callable[[str, list[dict[str, Any]]], str]:
    """A chat responder for the fake Fireworks: the reference SQL on a share of prompts set by
    the model's skill (deterministic per prompt), an echo otherwise."""
    refs = {}
    for line in TEXT2SQL.read_text(encoding="utf-8").splitlines():
        msgs = json.loads(line)["messages"]
        refs[msgs[-2]["content"]] = msgs[-1]["content"]

    def answer(model: str, messages: list[dict[str, Any]]) -> str:
        prompt = str(next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), ""))
        found = re.search(r"-(c\d+|final)$", model.split("#")[0].split("/")[-1])  # a tuned model, or a base
        skill = SKILL.get(found.group(1) if found else "base", 0.4)
        right = zlib.crc32(prompt.encode()) % 100 < skill * 100
        return refs.get(prompt, "SELECT 1") if right else f"echo: {prompt[:40]}"

    return answer


async def one_run(workdir: Path, scenario: str) -> dict[str, Any]:
    async with FakeSlack() as slack, FakeFireworks(job_seconds=0.15, deployment_seconds=0.05) as fireworks:
        if scenario == "realistic":
            fireworks.chat_responder = sql_answers()
        platform = FireworksPlatform(
            FireworksSettings(
                fireworks.api_key, fireworks.account, base_url=fireworks.base_url, poll_seconds=0.01, retry_base_delay=0.01
            )
        )
        db = await Database.open(workdir / "bot.sqlite3")
        policy = Policy(approvers=[BOB, CAROL], allow_self_approval=False)
        bot = await make_bot(
            slack, db, platform, fast_runner(workdir / "runs", policy=policy), live_interval=0.05, dataset_dir=DATASETS
        )
        for user, name in NAMES.items():
            slack.users[user] = {"id": user, "name": name, "real_name": name, "profile": {"display_name": name}}
        try:
            root = await drive(bot, slack, SCENARIOS[scenario])
        except TimeoutError:
            thread = slack.thread(CHANNEL, slack.roots(CHANNEL)[0]["ts"]) if slack.roots(CHANNEL) else []
            raise SystemExit("the run did not finish; the thread:\n" + "\n---\n".join(text_of(m)[:400] for m in thread)) from None
        finally:
            await bot.close()
            await platform.close()
            await db.close()
        return measure(slack, root["ts"])


async def drive(bot: Bot, slack: FakeSlack, command: str) -> dict[str, Any]:
    """/sft run → Revise (epochs 2) → Approve → promote the best → the end of the run."""
    await bot.driver.command(command, user=ALICE)
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
    return root


def _element(message: dict[str, Any], action_id: str) -> bool:
    return any(
        isinstance(el, dict) and el.get("action_id") == action_id
        for b in message["blocks"]
        for el in [*(b.get("elements") or []), *([b["accessory"]] if "accessory" in b else [])]
    )


def pinged(call: dict[str, Any]) -> set[str]:
    """Who a posted message notifies: everyone it mentions, and the person a DM goes to."""
    args = call["args"]
    text = json.dumps([args.get("text"), args.get("blocks")])
    people = set(re.findall(r"<@([UW][A-Z0-9]+)>", text))
    channel = str(args.get("channel") or "")
    if channel[:1] in ("U", "W", "D"):
        people.add("U" + channel[1:])
    return people


def measure(slack: FakeSlack, root_ts: str) -> dict[str, Any]:
    thread = slack.thread(CHANNEL, root_ts)
    bot_msgs = [m for m in slack.messages.get(CHANNEL, []) if m.bot_id]
    posted = [c for c in slack.calls if c["method"] == "chat.postMessage"]
    edits = [c for c in slack.calls if c["method"] == "chat.update"]
    pings: dict[str, int] = {}
    for c in posted:
        for person in pinged(c):
            pings[NAMES.get(person, person)] = pings.get(NAMES.get(person, person), 0) + 1
    return {
        "bot_messages_in_channel": len(bot_msgs),
        "thread_messages": len(thread),
        "chat_postMessage": len(posted),
        "chat_update": len(edits),
        "uploads": len(slack.uploads()),
        "ephemerals": len(slack.ephemeral),
        "notifying_messages_per_person": pings,
        "longest_code_line": max((longest_code_line(m.view()["rendered"]) for m in bot_msgs), default=0),
        "last_in_thread": (thread[-1]["text"] or "")[:80],
        "state": state_for_slackview(slack),
        "decisions": decisions_for_slackview(slack, root_ts),
    }


def _doc(messages: list[dict[str, Any]], ephemerals: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "channel_name": "ml-team",
        "bot_name": "sftbot",
        "bot_user": "UBOT",
        "names": NAMES,
        "messages": messages,
        "ephemerals": ephemerals or [],
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
            if m.edits:
                item["edits"] = m.edits
            messages.append(item)
    ephemerals = [
        {"channel": e.get("channel"), "user": e.get("user"), "text": e.get("text"), "blocks": e.get("blocks") or []}
        for e in slack.ephemeral
    ]
    return _doc(messages, ephemerals)


DECISION = ("sft_approve", "sft_promote", "sft_budget_raise", "sft_answer")


def decisions_for_slackview(slack: FakeSlack, root_ts: str) -> dict[str, Any]:
    """Every decision message as it was first posted (with its buttons), each the first reply
    of a thread of its own, so each is measured alone and with its sender's header."""
    out = []
    for i, c in enumerate(c for c in slack.calls if c["method"] == "chat.postMessage" and c["args"].get("thread_ts") == root_ts):
        blocks = c["args"].get("blocks") or []
        if not any(el.get("action_id") in DECISION for b in blocks if b.get("type") == "actions" for el in b["elements"]):
            continue
        parent = f"{1_700_000_000 + i * 1000}.000001"
        out.append({"channel": CHANNEL, "ts": parent, "text": "·"})
        out.append(
            {"channel": CHANNEL, "ts": f"{1_700_000_000 + i * 1000}.000002", "thread_ts": parent, "text": c["args"]["text"]}
            | {"blocks": blocks}
        )
    return _doc(out)


def slackview_path(given: str | None) -> Path | None:
    found = given or os.environ.get("SLACKVIEW")
    return Path(found).expanduser() if found else None


def report_heights(tool: Path, out: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Render with slackview and measure every message (thread and decisions) at 480 and 420 px."""
    render(tool, out / "state.json", out / "png")
    render(tool, out / "decisions.json", out / "decisions")
    return {"thread": heights(out / "png", result["state"]), "decisions": heights(out / "decisions", result["decisions"])}


def print_heights(h: dict[str, Any]) -> None:
    for label, per in (("finished thread", h["thread"]), ("each decision as posted", h["decisions"])):
        print(f"  {label}:")
        for page in per:
            print(f"    {page['page']:<44} {page['width']} px wide: {page['height']:>5} px tall")
            for m in page["messages"]:
                primary = f" · primary button ends at {m['primary']} px" if m["primary"] is not None else ""
                print(f"      {m['height']:>5} px  {m['text'][:60]}{primary}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "thread")
    parser.add_argument("--scenario", choices=[*SCENARIOS, "both"], default="both")
    parser.add_argument("--slackview", help="path to slackview.py (or set SLACKVIEW); without it: counts only")
    args = parser.parse_args()
    tool = slackview_path(args.slackview)
    for scenario in SCENARIOS if args.scenario == "both" else [args.scenario]:
        out = args.out / scenario
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(one_run(Path(tmp), scenario))
        for name in ("state", "decisions"):
            (out / f"{name}.json").write_text(json.dumps(result[name], indent=1, ensure_ascii=False), encoding="utf-8")
        counts = {k: v for k, v in result.items() if k not in ("state", "decisions")}
        print(f"== {scenario}: {SCENARIOS[scenario].split(' ', 1)[1]}")
        for key, value in counts.items():
            print(f"{key:>30}: {value}")
        if tool is None or not tool.is_file():
            print(
                "  (no heights: slackview not found. It is a dev tool outside this repository: set it up once with "
                "`bash <shared>/tools/slackview/setup.sh`, then pass --slackview <shared>/tools/slackview/slackview.py "
                "or set SLACKVIEW to that path.)"
            )
            (out / "counts.json").write_text(json.dumps(counts, indent=1, ensure_ascii=False), encoding="utf-8")
            continue
        counts["heights"] = report_heights(tool, out, result)
        print_heights(counts["heights"])
        (out / "counts.json").write_text(json.dumps(counts, indent=1, ensure_ascii=False), encoding="utf-8")
        print(f"  PNGs: {out / 'png'} and {out / 'decisions'}")


if __name__ == "__main__":
    main()
