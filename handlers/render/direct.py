"""The DM that asks one decider (with SFTBOT_DM_APPROVERS): what waits, for how much, whose
run it is, and the same buttons as the thread. When anyone decides, every decider's DM is
edited to say who did ("✅ Approved by @carol"), so nobody acts on a decided gate.
"""

from __future__ import annotations

from handlers.render.mrkdwn import Block, Message, actions, clip, context, section


def ask_dm(head: str, buttons: list[Block], *, link: str | None, block_id: str) -> Message:
    """``head``: "*Plan v1 of run #1* by alice waits for your approval: ≈ $21.47 · ~40 min"."""
    where = f"<{link}|Open the thread>" if link else "The run's thread has the details."
    blocks: list[Block] = [section(f"👋 {head}")]
    if buttons:
        blocks.append(actions(*buttons, block_id=block_id))
    blocks.append(context(f"{where} · I edit this message when someone decides."))
    return Message(text=clip(head.replace("*", ""), 3000), blocks=blocks)


def decided_dm(head: str, stamp_text: str, *, link: str | None) -> Message:
    """The same DM once decided: the buttons gone, who decided and when."""
    where = f" · <{link}|Open the thread>" if link else ""
    return Message(text=clip(f"{head} — {stamp_text}".replace("*", ""), 3000), blocks=[section(f"{head}\n{stamp_text}{where}")])
