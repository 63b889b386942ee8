"""The interactive elements' action ids: the listeners register exactly these (and the manifest
test checks them), the renderers put them on buttons, selects and modals."""

from __future__ import annotations

APPROVE, REVISE, CANCEL = "sft_approve", "sft_revise", "sft_cancel"
PROMOTE, CHOOSE = "sft_promote", "sft_choose_candidate"
ANSWER, ANSWER_SELECT = "sft_answer", "sft_answer_select"
CONFIRM_CANCEL, KEEP = "sft_confirm_cancel", "sft_keep_running"
START = "sft_start_run"  # the App Home's "Start a run" button
CONFIRM_TEARDOWN, KEEP_DEPLOYMENT = "sft_confirm_teardown", "sft_keep_deployment"
ACTION_IDS = (
    APPROVE,
    REVISE,
    CANCEL,
    PROMOTE,
    CHOOSE,
    ANSWER,
    ANSWER_SELECT,
    CONFIRM_CANCEL,
    KEEP,
    START,
    CONFIRM_TEARDOWN,
    KEEP_DEPLOYMENT,
)
