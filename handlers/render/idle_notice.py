"""The idle-deployment guard's DM and thread note: what is up, what it costs a day, three choices."""

from __future__ import annotations

from handlers.render import figures
from handlers.render.action_ids import IDLE_DELETE, IDLE_KEEP, IDLE_SCALE
from handlers.render.mrkdwn import Message, actions, button, code, confirm, context, encode, section
from handlers.render.root_message import run_title
from pipeline.domain.records import RunRecord


def _per_day(usd_per_hour: float | None) -> str:
    if not usd_per_hour:
        return "billing by the hour while a replica is up"
    return f"{figures.per_day(usd_per_hour)} while a replica is up"


def idle_dm(run: RunRecord, deployment_id: str, *, hours: float, usd_per_hour: float | None, link: str | None) -> Message:
    where = f" (<{link}|thread>)" if link else ""
    value = encode(run=run.id)
    blocks = [
        section(
            f"⏰ Deployment {code(deployment_id)} of {run_title(run)}{where} has been up {hours:.0f} h, "
            f"{_per_day(usd_per_hour)}. Still need it?"
        ),
        actions(
            button("Keep it", IDLE_KEEP, value),
            button("Scale to zero", IDLE_SCALE, value),
            button(
                "Delete it",
                IDLE_DELETE,
                value,
                style="danger",
                confirm_=confirm(
                    "Delete this deployment?",
                    "It stops billing at once and requests to it fail; the model stays and can be deployed again.",
                    "Delete",
                    "Keep it",
                ),
            ),
            block_id=f"idle|{run.id}",
        ),
        context(
            "Scale to zero: no replica (and no bill) until the next request, which waits a few minutes for one. "
            "Keep: I ask again after the same time. Only this run's deployment is touched."
        ),
    ]
    return Message(text=f"Deployment {deployment_id} of run #{run.number} has been up {hours:.0f} h: keep it?", blocks=blocks)


def idle_note(run: RunRecord, deployment_id: str, *, hours: float, usd_per_hour: float | None, asked: str) -> str:
    """The thread's note; ``asked`` names the requester (their DM already notified them)."""
    return (
        f"⏰ Deployment {code(deployment_id)} has been up {hours:.0f} h ({_per_day(usd_per_hour)}); "
        f"I asked {asked} by DM whether to keep it."
    )


def kept_text(run: RunRecord, deployment_id: str, *, scaled: bool, who: str) -> str:
    if scaled:
        return f"⏬ Deployment {code(deployment_id)} of run #{run.number} was scaled to zero by {who}: no replica bills from now."
    return f"👍 Deployment {code(deployment_id)} of run #{run.number} stays up ({who}); I'll ask again later."
