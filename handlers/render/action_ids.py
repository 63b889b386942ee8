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
# Evidence behind a button: each opens a modal (one id each: ids are unique within a block).
DETAILS_PRICE, DETAILS_SPEC = "sft_details_price", "sft_details_spec"
DETAILS_EXAMPLES, DETAILS_ERROR = "sft_details_examples", "sft_details_error"
RETRY = "sft_retry"  # a failed run's "Retry": the same request again, as a new run
TEARDOWN = "sft_teardown"  # "Delete deployment" on the final message and the App Home (confirmed by Slack's dialog)
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
    DETAILS_PRICE,
    DETAILS_SPEC,
    DETAILS_EXAMPLES,
    DETAILS_ERROR,
    RETRY,
    TEARDOWN,
)
