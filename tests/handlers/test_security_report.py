"""final_report.md quotes what people typed and chose as text, never as Markdown: a run asked for
in a mention whose instruction carries Markdown, by someone whose Slack display name is a link,
through the real Bolt app to the report uploaded in its thread; read as a CommonMark renderer
reads it (markdown-it-py)."""

from __future__ import annotations

from markdown_it import MarkdownIt

from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, BOB, CHANNEL, MakeBot, find_element, has, in_thread, root_of
from handlers.render import action_ids
from tests.paths import TEXT2SQL

# Parses as an instruction (key=value, the rest tolerated), and as Markdown it would be a
# heading, a rule and bold text in the middle of the report.
INSTRUCTION = f"run dataset={TEXT2SQL.name}\n\n# model=qwen3-8b\n\n***\n\n**epochs=1**"
PHISH = "[Approved by finance](https://phish.example/)"


async def test_the_report_quotes_the_instruction_and_the_requesters_name_as_text(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    fake_slack.users[ALICE] = {"id": ALICE, "name": "alice", "real_name": PHISH, "profile": {"display_name": PHISH}}
    bot = await bot_factory(MemoryPlatform())
    said = fake_slack.user_says(CHANNEL, f"<@UBOT> {INSTRUCTION}", user=ALICE)
    await bot.driver.event({**said, "type": "app_mention"})
    root = await root_of(fake_slack)
    plan = await in_thread(fake_slack, root, has("Plan v1"))
    await bot.driver.click(plan, action_ids.APPROVE, user=BOB)
    gate = await in_thread(fake_slack, root, lambda m: find_element(m["blocks"], action_ids.PROMOTE) is not None)
    await bot.driver.click(gate, action_ids.PROMOTE, user=BOB)
    upload = await fake_slack.wait_for(lambda: next((u for u in fake_slack.uploads() if u.filename == "final_report.md"), None))
    report = upload.data.decode()

    md = MarkdownIt("commonmark")
    fences = [t.content for t in md.parse(report) if t.type == "fence"]
    assert any("# model=qwen3-8b" in f and "**epochs=1**" in f for f in fences)  # the instruction, verbatim, as code
    html = md.render(report)
    assert "<h1>model=qwen3-8b</h1>" not in html and "<strong>epochs=1</strong>" not in html and "<hr" not in html
    assert 'href="https://phish.example/"' not in html  # the display name is no link...
    assert "[Approved by finance](https://phish.example/)" in html  # ...but shows as what it is
