"""The interactive elements' action ids: the listeners register exactly these (and the manifest
test checks them), the renderers put them on buttons, selects and modals."""

from __future__ import annotations

APPROVE, REVISE, CANCEL = "sft_approve", "sft_revise", "sft_cancel"
PROMOTE, CHOOSE = "sft_promote", "sft_choose_candidate"
ANSWER, ANSWER_SELECT = "sft_answer", "sft_answer_select"
CONFIRM_CANCEL, KEEP = "sft_confirm_cancel", "sft_keep_running"
START = "sft_start_run"  # the App Home's "Start a run" button
CONFIRM_TEARDOWN, KEEP_DEPLOYMENT = "sft_confirm_teardown", "sft_keep_deployment"
BUDGET_RAISE, BUDGET_SKIP = "sft_budget_raise", "sft_budget_skip"  # the budget gate
# The idle-deployment DM: keep it, scale it to zero, delete it.
IDLE_KEEP, IDLE_SCALE, IDLE_DELETE = "sft_idle_keep", "sft_idle_scale_to_zero", "sft_idle_delete"
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
    BUDGET_RAISE,
    BUDGET_SKIP,
    IDLE_KEEP,
    IDLE_SCALE,
    IDLE_DELETE,
)
