"""What a user types after ``/sft run`` becomes one RunSpec, or a message naming the problem."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.domain.instructions import InstructionError, normalise_model, parse_instruction
from pipeline.domain.spec import CandidateSpec, EvalKind, Evaluation, RunSpec, SpecError

LOSS = Evaluation(kind=EvalKind.LOSS)
GENERATE = Evaluation(kind=EvalKind.GENERATE)
OWN = Evaluation(kind=EvalKind.EVALUATOR)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Run supervised fine-tuning on accounts/myacct/datasets/customer-support-conv. "
            "Use Qwen3 32B as the base model. Use validation loss for evaluation.",
            RunSpec(dataset="accounts/myacct/datasets/customer-support-conv", base_models=("qwen3-32b",), evaluation=LOSS),
        ),
        (
            "Run SFT on accounts/myacct/datasets/mydata across qwen3-8b and qwen3-32b with learning rates "
            "1e-4 and 5e-5, LoRA ranks 16 and 32, and 3 epochs.",
            RunSpec(
                dataset="accounts/myacct/datasets/mydata",
                base_models=("qwen3-8b", "qwen3-32b"),
                learning_rates=(1e-4, 5e-5),
                lora_ranks=(16, 32),
                epochs=3,
            ),
        ),
        (
            "Use LoRA ranks 8, 16, 32 with learning rates 1e-4 and 5e-5.",
            RunSpec(lora_ranks=(8, 16, 32), learning_rates=(1e-4, 5e-5)),
        ),
        ("Train each candidate for 3 epochs.", RunSpec(epochs=3)),
        ("Use 500 samples for HP tuning.", RunSpec(hp_samples=500)),
        ("Run up to 10 training jobs in parallel.", RunSpec(max_parallel=10)),
        ("Skip the full-data final run.", RunSpec(final_run=False)),
        ("Use accounts/myacct/datasets/holdout as the eval dataset.", RunSpec(eval_dataset="accounts/myacct/datasets/holdout")),
        ("validation loss is fine", RunSpec(evaluation=LOSS)),
        ("Use my own evaluator", RunSpec(evaluation=OWN)),
        (
            "Use evaluator accounts/myacct/evaluators/my-eval.",
            RunSpec(evaluation=Evaluation(kind=EvalKind.EVALUATOR, ref="accounts/myacct/evaluators/my-eval")),
        ),
        ("Generate an evaluator for me.", RunSpec(evaluation=GENERATE)),
        ("agent-generated evaluator", RunSpec(evaluation=GENERATE)),
        ("Don't deploy", RunSpec(deploy=False)),
        ("no deployment", RunSpec(deploy=False)),
    ],
)
def test_plain_english_phrasings(text: str, expected: RunSpec) -> None:
    assert parse_instruction(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Please skip the final run.", RunSpec(final_run=False)),
        ("Do the full-data final run", RunSpec(final_run=True)),
        ("run SFT on ./data.jsonl with qwen3-8b", RunSpec(dataset="./data.jsonl", base_models=("qwen3-8b",))),
        ("Run SFT on /tmp/x.jsonl.", RunSpec(dataset="/tmp/x.jsonl")),
        ("fine-tune on ../data/sets/gsm8k_200.jsonl", RunSpec(dataset="../data/sets/gsm8k_200.jsonl")),
        ("train on ./data/train.jsonl, thanks!", RunSpec(dataset="./data/train.jsonl")),
        ("lr 0.0001 and 1.5e-4", RunSpec(learning_rates=(1e-4, 1.5e-4))),
        ("learning rates 1e-4, 5e-5 or 1e-5", RunSpec(learning_rates=(1e-4, 5e-5, 1e-5))),
        ("use three epochs", RunSpec(epochs=3)),
        ("HP tuning on 1,000 samples", RunSpec(hp_samples=1000)),
        ("max 4 concurrent jobs", RunSpec(max_parallel=4)),
        ("evaluate on 200 held-out examples", RunSpec(eval_examples=200)),
        ("Don't convert the data", RunSpec(convert=False)),
        ("validation loss only. Approved", RunSpec(evaluation=LOSS)),
        (
            "candidates 16:1e-4, 32:5e-5",
            RunSpec(
                candidates=(CandidateSpec(lora_rank=16, learning_rate=1e-4), CandidateSpec(lora_rank=32, learning_rate=5e-5))
            ),
        ),
        (
            "rank 16 with lr 1e-4 and rank 32 with lr 5e-5",
            RunSpec(
                candidates=(CandidateSpec(lora_rank=16, learning_rate=1e-4), CandidateSpec(lora_rank=32, learning_rate=5e-5))
            ),
        ),
        (
            "Use my own evaluator: evaluator accounts/a/evaluators/e",
            RunSpec(evaluation=Evaluation(kind=EvalKind.EVALUATOR, ref="accounts/a/evaluators/e")),
        ),
        ("use ./my_eval.py as the evaluator", RunSpec(evaluation=Evaluation(kind=EvalKind.EVALUATOR, ref="./my_eval.py"))),
        ("fine-tune /models/my-llama with lr 1e-4", RunSpec(base_models=("/models/my-llama",), learning_rates=(1e-4,))),
        ("Use my-custom-model as the base model", RunSpec(base_models=("my-custom-model",))),
        ("", RunSpec()),
    ],
)
def test_more_english(text: str, expected: RunSpec) -> None:
    assert parse_instruction(text) == expected


def test_key_value_form() -> None:
    spec = parse_instruction(
        "dataset=accounts/acme/datasets/support model=qwen3-8b,qwen3-32b lr=1e-4,5e-5 rank=16,32 epochs=3 "
        "hp_samples=500 parallel=10 final=skip eval=evaluator:accounts/acme/evaluators/e eval_dataset=accounts/acme/datasets/h"
    )
    assert spec == RunSpec(
        dataset="accounts/acme/datasets/support",
        base_models=("qwen3-8b", "qwen3-32b"),
        learning_rates=(1e-4, 5e-5),
        lora_ranks=(16, 32),
        epochs=3,
        hp_samples=500,
        max_parallel=10,
        final_run=False,
        evaluation=Evaluation(kind=EvalKind.EVALUATOR, ref="accounts/acme/evaluators/e"),
        eval_dataset="accounts/acme/datasets/h",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "models=qwen3-8b learning_rate=1e-4 ranks=8",
            RunSpec(base_models=("qwen3-8b",), learning_rates=(1e-4,), lora_ranks=(8,)),
        ),
        ("learning_rates=1e-4,5e-5 lora_rank=32", RunSpec(learning_rates=(1e-4, 5e-5), lora_ranks=(32,))),
        (
            "candidates=16:1e-4,32:5e-5",
            RunSpec(
                candidates=(CandidateSpec(lora_rank=16, learning_rate=1e-4), CandidateSpec(lora_rank=32, learning_rate=5e-5))
            ),
        ),
        ("final=on deploy=no convert=yes", RunSpec(final_run=True, deploy=False, convert=True)),
        ("final=off deploy=yes convert=no", RunSpec(final_run=False, deploy=True, convert=False)),
        ("final=yes", RunSpec(final_run=True)),
        ("final=no", RunSpec(final_run=False)),
        ("eval=loss eval_examples=200", RunSpec(evaluation=LOSS, eval_examples=200)),
        ("eval=generate", RunSpec(evaluation=GENERATE)),
        ("eval=evaluator", RunSpec(evaluation=OWN)),
        ('dataset="my data.jsonl" model="Qwen3 32B"', RunSpec(dataset="my data.jsonl", base_models=("qwen3-32b",))),
        ("dataset='oops.jsonl", RunSpec(dataset="oops.jsonl")),  # unbalanced quote: taken as typed
        ("accounts/acme/datasets/support rank=16", RunSpec(dataset="accounts/acme/datasets/support", lora_ranks=(16,))),
        ("rank=16 ./train.jsonl", RunSpec(dataset="./train.jsonl", lora_ranks=(16,))),
        ("model=/opt/models/qwen-local", RunSpec(base_models=("/opt/models/qwen-local",))),
        ("model=./weights/tiny.gguf", RunSpec(base_models=("./weights/tiny.gguf",))),
        ("dataset=x.jsonl.", RunSpec(dataset="x.jsonl")),
        ("dataset=foo.jsonl Use 500 samples for HP tuning.", RunSpec(dataset="foo.jsonl", hp_samples=500)),
        ("Please, dataset=a.jsonl and epochs=2. Approved!", RunSpec(dataset="a.jsonl", epochs=2)),
    ],
)
def test_key_value_spellings_and_mixes(text: str, expected: RunSpec) -> None:
    assert parse_instruction(text) == expected


@pytest.mark.parametrize(
    ("typed", "short_id"),
    [
        ("Qwen3 32B", "qwen3-32b"),
        ("Qwen3-8B", "qwen3-8b"),
        ("llama v3p3 70b instruct", "llama-v3p3-70b-instruct"),
        ("Llama 3.3 70B Instruct", "llama-v3p3-70b-instruct"),
        ("qwen2.5-7b-instruct", "qwen2p5-7b-instruct"),
        ("Qwen3.5 9B", "qwen3p5-9b"),
        ("Kimi K2.5", "kimi-k2p5"),
        ("gemma-4-31b-it", "gemma-4-31b-it"),
        ("accounts/fireworks/models/qwen3-8b", "qwen3-8b"),
        ("accounts/acme/models/my-tune", "accounts/acme/models/my-tune"),
        ("/srv/models/Qwen3-8B", "/srv/models/Qwen3-8B"),
        ("./tiny.gguf", "./tiny.gguf"),
        ("My-Special-Model", "My-Special-Model"),
    ],
)
def test_model_names_are_normalised(typed: str, short_id: str) -> None:
    assert normalise_model(typed) == short_id
    assert parse_instruction(f"model={typed!r}" if " " in typed else f"model={typed}").base_models == (short_id,)


def test_models_keep_the_order_they_were_written_in() -> None:
    spec = parse_instruction("use Llama 3.3 70B Instruct and accounts/fireworks/models/qwen3-8b and accounts/me/models/x")
    assert spec.base_models == ("llama-v3p3-70b-instruct", "qwen3-8b", "accounts/me/models/x")


def test_rank_not_allowed_names_value_and_choices() -> None:
    with pytest.raises(SpecError) as exc:
        parse_instruction("rank=7")
    assert "7" in str(exc.value) and "4, 8, 16, 32" in str(exc.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("lr=-1", ["learning rate -1", "0.01"]),
        ("learning rate -1", ["learning rate -1"]),
        ("parallel=0", ["parallel jobs 0", "1 to 64"]),
        ("epochs=99", ["epochs 99", "1 to 50"]),
        ("candidates=16:1e-4 lr=1e-4", ["not both"]),
        ("candidates=64:1e-4", ["LoRA rank 64"]),
    ],
)
def test_out_of_range_and_conflicts_use_the_spec_message(text: str, words: list[str]) -> None:
    with pytest.raises(SpecError) as exc:
        parse_instruction(text)
    for w in words:
        assert w in str(exc.value)


def test_unknown_key_is_named_with_the_known_keys() -> None:
    with pytest.raises(InstructionError) as exc:
        parse_instruction("dataset=a.jsonl foo=1")
    msg = str(exc.value)
    assert "'foo'" in msg and "dataset" in msg and "lr" in msg and "hp_samples" in msg


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("make it sparkle", "'make it sparkle'"),
        ("Run SFT on a.jsonl. Make it sparkle! Use 500 samples for HP tuning.", "'Make it sparkle'"),
        ("dataset=a.jsonl foo", "'foo'"),
        ("Use 500 samples", "'Use 500 samples'"),
        ("1e-4", "'1e-4'"),
    ],
)
def test_what_is_not_understood_is_quoted(text: str, quoted: str) -> None:
    with pytest.raises(InstructionError) as exc:
        parse_instruction(text)
    assert f"I could not understand: {quoted}" in str(exc.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("epochs=3 and 5 epochs", ["epochs", "3 and 5"]),
        ("validation loss. Generate an evaluator for me", ["evaluation was given twice"]),
        ("use qwen", ["'qwen'", "full model name"]),
        ("rank=1.5", ["whole number", "'1.5'"]),
        ("lr=fast", ["'fast'", "not a number"]),
        ("final=maybe", ["yes or no", "'maybe'"]),
        ("eval=vibes", ["'vibes'"]),
        ("dataset=", ["needs a value"]),
        ("epochs=" + "9" * 500, ["whole number", "…"]),
    ],
)
def test_other_errors_name_the_problem(text: str, words: list[str]) -> None:
    with pytest.raises(InstructionError) as exc:
        parse_instruction(text)
    for w in words:
        assert w in str(exc.value)


def _never_crashes(text: str) -> None:
    try:
        assert isinstance(parse_instruction(text), RunSpec)
    except SpecError:  # InstructionError is a SpecError; anything else fails the test
        pass


_PHRASES = [
    "Run SFT on accounts/a/datasets/b", "across qwen3-8b and qwen3-32b", "Qwen3 32B", "lr=1e-4", "rank=16,32",
    "candidates=16:1e-4", "learning rates 1e-4 and 5e-5", "LoRA ranks 8, 16", "3 epochs", "Use 500 samples for HP tuning",
    "Run up to 10 training jobs in parallel", "Skip the full-data final run", "Don't deploy", "validation loss is fine",
    "Use my own evaluator", "Generate an evaluator for me", "/tmp/x.jsonl", "../m.gguf", "accounts/x/models/y",
    "epochs=", "='", '"', "=", ",", ".", "and", "please", "1,000", "-1", "16:", "\ue000", "9" * 40,
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_never_crashes_on_arbitrary_text(text: str) -> None:
    _never_crashes(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(_PHRASES), st.text(max_size=6)), max_size=10), st.sampled_from([" ", "", ". ", "\n"]))
def test_never_crashes_on_known_phrases_mixed_with_noise(parts: list[str], sep: str) -> None:
    _never_crashes(sep.join(parts))
