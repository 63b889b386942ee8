"""Fireworks deployments and chat through the real SDK against the fake: serve, snippet, teardown."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.testing.fireworks import FakeFireworks
from bot.testing.fireworks.shapes import shape
from pipeline.domain.platform import (
    ChatMessage,
    DeploymentState,
    NotFound,
    PlatformError,
)
from pipeline.platforms.fireworks.platform import FireworksPlatform
from tests.pipeline.fireworks_support import ACCT, request, seed_datasets, until


async def completed_model(fake: FakeFireworks, platform: FireworksPlatform, job_id: str = "sftbot-r1-final") -> str:
    await seed_datasets(fake)
    await platform.training.create(request(job_id))
    fake.clock.advance(10)
    status = await platform.training.get(job_id)
    assert status.model is not None
    return status.model


async def test_deploy_chat_snippet_and_teardown(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    model = await completed_model(fake, platform)
    fake.cold_start_errors = 2  # a fresh deployment answers 503 twice before it serves
    created = await platform.serving.create("sftbot-r1-dep", model)
    assert created.state is DeploymentState.CREATING
    again = await platform.serving.create("sftbot-r1-dep", model)  # a resume: read back, not created
    assert again.deployment_id == "sftbot-r1-dep" and fake.create_counts("deployments") == {"sftbot-r1-dep": 1}
    body = fake.calls("POST", r"/deployments$")[0]
    assert body.query == {"deploymentId": "sftbot-r1-dep"}
    assert body.json is not None and body.json["baseModel"] == model
    # The shape Fireworks matched for the fine-tuned model's base, not "default": what the plan priced.
    assert body.json["deploymentShape"] == "accounts/fireworks/deploymentShapes/qwen3-8b-fast"
    assert fake.calls("POST", r"/deploymentShapeVersions:match$")[0].json == {
        "createDeploymentRequest": {"parent": f"accounts/{ACCT}", "deployment": {"baseModel": model, "enableAddons": False}}
    }

    async def ready() -> bool:
        return (await platform.serving.get("sftbot-r1-dep")).state is DeploymentState.READY

    await until(ready)
    status = await platform.serving.get("sftbot-r1-dep")
    assert status.model == model
    assert status.model_string == f"{model}#accounts/{ACCT}/deployments/sftbot-r1-dep"
    assert status.endpoint == f"{fake.base_url}/v1"

    reply = await platform.inference.chat(status.model_string, [ChatMessage(role="user", content="Say OK.")], max_tokens=16)
    assert reply == "echo: Say OK."
    assert [r.status for r in fake.calls("POST", r"/chat/completions$")] == [503, 503, 200]

    snippet = platform.serving.snippet(status)
    assert status.model_string in snippet.code and 'os.environ["FIREWORKS_API_KEY"]' in snippet.code
    assert fake.api_key not in snippet.code and snippet.env == ["FIREWORKS_API_KEY"]
    compile(snippet.code, "snippet.py", "exec")
    assert '"role": "system"' not in snippet.code and "exc.status_code != 503" in snippet.code
    task = platform.serving.snippet(status, system_prompt='You write SQL. Say "only" SQL.')
    assert '{"role": "system", "content": "You write SQL. Say \\"only\\" SQL."}' in task.code
    compile(task.code, "snippet.py", "exec")

    with pytest.raises(PlatformError, match="refusing to delete deployment prod-dep"):
        await platform.serving.delete("prod-dep")
    gone = await platform.serving.delete("sftbot-r1-dep")
    # A hard delete reads back as 404 once it is through: that is gone, not a failed teardown.
    assert gone.state is DeploymentState.DELETED and gone.deployment_id == "sftbot-r1-dep"
    assert [c.status for c in fake.calls("GET", r"/deployments/sftbot-r1-dep$")][-1] == 404
    delete = fake.calls("DELETE", r"/deployments/sftbot-r1-dep$")[0]
    assert (delete.query.get("ignoreChecks"), delete.query.get("hard")) == ("true", "true")
    with pytest.raises(NotFound):
        await platform.serving.get("sftbot-r1-dep")


async def test_default_snippet_targets_the_public_api(
    make_platform: Callable[..., FireworksPlatform], fake: FakeFireworks
) -> None:
    platform = make_platform(base_url=None)
    status = await make_platform().serving.create("sftbot-r9-dep", "accounts/fireworks/models/qwen3-8b")
    code = platform.serving.snippet(status).code
    assert "base_url" not in code and status.model_string in code
    assert platform.endpoint == "https://api.fireworks.ai/inference/v1"


async def test_inference_goes_to_its_own_root(fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform]) -> None:
    # The base-URL gotcha: chat must reach {inference}/v1/chat/completions, not the control root.
    platform = make_platform(inference_url=f"{fake.base_url}/inference/v1")
    fake.chat_responder = lambda model, messages: "<think>2+2 is 4</think>\n4"
    reply = await platform.inference.chat("accounts/fireworks/models/qwen3-8b", [ChatMessage(role="user", content="2+2?")])
    assert reply == "4"  # the reasoning block is not the answer
    assert [r.path for r in fake.calls("POST", r"chat/completions$")] == ["/inference/v1/chat/completions"]
    assert platform.endpoint == f"{fake.base_url}/inference/v1"


async def test_chat_with_an_unknown_model_fails_fast(platform: FireworksPlatform) -> None:
    with pytest.raises(PlatformError, match="HTTP 404") as err:
        await platform.inference.chat("accounts/test-acct/models/nope", [ChatMessage(role="user", content="hi")])
    assert "Model not found" in str(err.value)


async def test_get_deployment_unknown_is_not_found(platform: FireworksPlatform) -> None:
    with pytest.raises(NotFound):
        await platform.serving.get("sftbot-none")


async def test_scale_to_zero_parks_the_deployment_as_the_sdk_helper_does(
    fake: FakeFireworks, platform: FireworksPlatform
) -> None:
    """min = max = 0 in one PATCH of the deployment (SDK training/sdk/deployment.py:637-658), not
    ``:scale`` with a replica count, which leaves the GPU quota held at maxReplicaCount."""
    created = await platform.serving.create("sftbot-r1-dep", "accounts/fireworks/models/qwen3-8b")
    assert created.deployment_id == "sftbot-r1-dep"
    await platform.serving.scale_to_zero("sftbot-r1-dep")
    (patch,) = fake.calls("PATCH", r"/deployments/sftbot-r1-dep$")
    assert patch.json == {"maxReplicaCount": 0, "minReplicaCount": 0}
    assert not fake.calls("PATCH", r":scale$")
    wire = fake.deployments["sftbot-r1-dep"].wire(fake.clock.now())
    assert (wire["minReplicaCount"], wire["maxReplicaCount"]) == (0, 0)


async def test_live_merge_refused_on_the_matched_shape_is_tried_on_the_default_one(
    fake: FakeFireworks, platform: FireworksPlatform
) -> None:
    base = "accounts/fireworks/models/qwen3-8b"
    fake.shapes[base] = [
        shape("qwen3-8b-default", base, "NVIDIA_H100_80GB", 2, "FP8", addons=False),  # the server's default (first)
        shape("qwen3-8b-cheap", base, "NVIDIA_H100_80GB", 1, "FP8", addons=False),  # the cheapest: matched first
    ]
    fake.live_merge_refused = {"qwen3-8b-cheap"}
    created = await platform.serving.create("sftbot-r1-dep", base)
    shapes = [r.json["deploymentShape"] for r in fake.calls("POST", r"/deployments$")]
    assert shapes == ["accounts/fireworks/deploymentShapes/qwen3-8b-cheap", "default"]
    assert created.deployment_id == "sftbot-r1-dep" and fake.create_counts("deployments") == {"sftbot-r1-dep": 1}
    assert fake.deployments["sftbot-r1-dep"].body["deploymentShape"].endswith("qwen3-8b-default/versions/1")
