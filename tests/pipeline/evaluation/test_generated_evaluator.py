"""Generated evaluators: the kind is detected from real data and the rendered code, run
through the sandbox, scores right answers 1 and wrong ones 0 (or partial credit)."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pipeline.dataset.convert import convert_dataset
from pipeline.dataset.demo_data import generate as generate_rows
from pipeline.dataset.demo_data import render as render_rows
from pipeline.evaluation.eval_types import EvalExample, EvalRun, ExampleScore, GeneratedEvaluator, SandboxLimits
from pipeline.evaluation.generate import generate_evaluator
from pipeline.evaluation.sandbox.batch import run_evaluator
from pipeline.evaluation.scores import strip_thinking, worst_examples
from tests.paths import DATASETS


def contacts(folder: Path) -> Path:
    """300 rows of the demo's generator (the shipped file keeps 120 for the demo's speed): enough
    repeats of each job for the evaluator to treat it as a closed set."""
    path = folder / "contacts.jsonl"
    path.write_text(render_rows(generate_rows(300)), encoding="utf-8")
    return path


LIMITS = SandboxLimits(per_example_seconds=5.0, batch_seconds=30.0)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def chat(question: str, answer: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


async def score(gen: GeneratedEvaluator, prompt: list[dict[str, Any]], truth: str, outputs: list[str]) -> EvalRun:
    assert gen.evaluator_path is not None
    examples = [
        EvalExample(index=i, messages=[*prompt, {"role": "assistant", "content": out}], ground_truth=truth)
        for i, out in enumerate(outputs)
    ]
    run = await run_evaluator(Path(gen.evaluator_path), examples, limits=LIMITS)
    assert run.fatal is None and run.errors == 0, run
    return run


def load(gen: GeneratedEvaluator) -> ModuleType:
    assert gen.evaluator_path is not None
    spec = importlib.util.spec_from_file_location("generated", gen.evaluator_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_gsm8k_gets_a_numeric_evaluator(tmp_path: Path) -> None:
    converted = tmp_path / "gsm8k_chat.jsonl"
    convert_dataset(DATASETS / "gsm8k_200.jsonl", converted)
    gen = generate_evaluator(converted, tmp_path / "out")
    assert (gen.kind, gen.supported, gen.rows_inspected) == ("numbers", True, 200)
    assert gen.reason.startswith("Outputs end in a number (200 of 200 rows)")
    spec = Path(gen.spec_path or "").read_text()
    assert "1e-06" in spec and "\\boxed" in spec
    prompt = [{"role": "user", "content": "How many clips did Natalia sell altogether in April and May?"}]
    right = [
        "The answer is 72",
        "\\boxed{72}",
        "72.0",
        "72",
        "<think>48 + 24, maybe 71?</think>The answer is 72.",
        "She sold 48 + 24 = 72 clips.\n#### 72",
        "$72",
        "reasoning without an opening tag</think>72",
    ]
    wrong = ["71", "The answer is 7.2", "I do not know", "72 + 1 = 73", "<think>the answer is 72"]
    run = await score(gen, prompt, "72", right + wrong)
    assert [s.score for s in run.scores] == [1.0] * len(right) + [0.0] * len(wrong)
    assert run.scores[-3].reason == "no number found in the output (expected 72)"
    assert run.scores[-2].reason == "final number 73 differs from the reference 72"
    extract = load(gen).extract_number
    assert extract("It costs $1,234.50 in total") == 1234.5
    assert extract("The change is -5 degrees") == -5
    assert extract("\\boxed{\\frac{3}{4}}") == 0.75 and extract("3/4 of them") == 0.75
    assert extract("The answer is 18 (from 3 x 6).") == 18


async def test_json_outputs_get_partial_credit_per_key(tmp_path: Path) -> None:
    data = contacts(tmp_path)
    gen = generate_evaluator(data, tmp_path / "out")
    assert (gen.kind, gen.supported) == ("json", True)
    assert gen.reason == "Outputs are JSON objects with keys name, age, job, city; each correct key earns 1/4"
    assert gen.details["types"]["age"] == ["number"] and "teacher" in gen.details["enums"]["job"]
    first = json.loads(data.read_text().splitlines()[0])
    prompt, truth = first["messages"][:-1], first["messages"][-1]["content"]
    good = json.loads(truth)
    outputs = [
        truth,
        json.dumps({**good, "age": good["age"] + 1}),  # one wrong key
        '{"name": "Tomas Haddad", "age": 44,',  # invalid JSON
        "```json\n" + json.dumps({**good, "name": good["name"].upper()}) + "\n```",  # fenced, case differs
        json.dumps({k: v for k, v in good.items() if k != "city"}),  # a key missing
        json.dumps({**good, "age": str(good["age"])}),  # wrong type
        json.dumps({**good, "job": "astronaut", "city": "Atlantis", "extra": 1}),
        "[1, 2]",
    ]
    run = await score(gen, prompt, truth, outputs)
    assert [s.score for s in run.scores] == [1.0, 0.75, 0.0, 1.0, 0.75, 0.75, 0.5, 0.0]
    assert run.scores[2].reason.startswith("output is not valid JSON")
    assert run.scores[4].reason == "3/4 keys correct; city missing"
    assert "age is a string, expected number" in run.scores[5].reason
    assert "(not a value seen in training)" in run.scores[6].reason and "extra keys ignored: extra" in run.scores[6].reason
    assert run.scores[7].reason == "output is valid JSON but a array, not an object"


async def test_sql_outputs_match_by_normalised_text_or_by_results(tmp_path: Path) -> None:
    data = DATASETS / "text2sql_dataset.jsonl"
    gen = generate_evaluator(data, tmp_path / "out")
    assert (gen.kind, gen.supported) == ("sql", True)
    assert "CREATE TABLE" in Path(gen.spec_path or "").read_text()
    first = json.loads(data.read_text().splitlines()[0])
    prompt, truth = first["messages"][:-1], first["messages"][-1]["content"]
    assert truth == 'SELECT pick FROM table_name_15 WHERE school = "lamar high school"'
    outputs = [
        "select   pick\nfrom table_name_15\nwhere school = 'lamar high school';",  # reformatted
        "```sql\nSELECT t.pick FROM table_name_15 AS t WHERE t.school = 'lamar high school'\n```",  # same rows
        "SELECT school FROM table_name_15 WHERE school = 'lamar high school'",  # different column
        "SELECT pick FROM table_name_15 WHERE school = 'Lamar High School'",  # different literal
        "SELECT pick FROM table_name_15",  # no filter
        "SELEC pick FRM table_name_15",  # does not run
        "SELECT pick FROM table_name_15; DROP TABLE table_name_15",
    ]
    run = await score(gen, prompt, truth, outputs)
    assert [s.score for s in run.scores] == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert run.scores[0].reason == "the query matches the reference after normalisation"
    assert run.scores[1].reason == "the query returns the same 2 row(s) as the reference on a test database"
    assert "fails to run" in run.scores[5].reason

    count_prompt = [{"role": "user", "content": "CREATE TABLE t (a VARCHAR, b VARCHAR)\nHow many rows have a = x?"}]
    counts = await score(
        gen,
        count_prompt,
        "SELECT COUNT(*) FROM t WHERE a = 'x'",
        ['SELECT count(1) FROM t WHERE a = "x"', "SELECT COUNT(*) FROM t WHERE b = 'x'"],
    )
    assert [s.score for s in counts.scores] == [1.0, 0.0]


async def test_a_closed_label_set_gets_exact_label_matching(tmp_path: Path) -> None:
    rng = random.Random(3)
    labels = ["positive", "negative", "neutral"]
    rows = [chat(f"Review {i}: {rng.choice(['great', 'awful', 'fine'])} product", rng.choice(labels)) for i in range(60)]
    gen = generate_evaluator(write_rows(tmp_path / "sentiment.jsonl", rows), tmp_path / "out")
    assert (gen.kind, gen.supported, gen.details["labels"]) == ("labels", True, sorted(labels))
    assert gen.reason.startswith("Outputs are one of 3 labels (negative, neutral, positive)")
    run = await score(
        gen,
        [{"role": "user", "content": "Review: great"}],
        "positive",
        ["Positive.", "  positive ", "negative", "great", "The sentiment is positive"],
    )
    assert [s.score for s in run.scores] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert run.scores[3].reason == "'great' is not one of the 3 labels (expected 'positive')"


async def test_short_answers_without_a_closed_set_get_normalised_exact_match(tmp_path: Path) -> None:
    cities = [
        "Paris",
        "Berlin",
        "Madrid",
        "Rome",
        "Lisbon",
        "Vienna",
        "Prague",
        "Warsaw",
        "Oslo",
        "Dublin",
        "Athens",
        "Sofia",
        "Riga",
        "Vilnius",
        "Tallinn",
        "Bern",
        "Brussels",
        "Amsterdam",
        "Helsinki",
        "Stockholm",
        "Copenhagen",
        "Budapest",
        "Bucharest",
        "Zagreb",
        "Ljubljana",
    ]
    rows = [chat(f"Capital number {i}?", f"The capital is {c}") for i, c in enumerate(cities)]
    gen = generate_evaluator(write_rows(tmp_path / "capitals.jsonl", rows), tmp_path / "out")
    assert (gen.kind, gen.supported) == ("exact", True)
    run = await score(
        gen,
        [{"role": "user", "content": "Capital of France?"}],
        "The capital is Paris",
        ["the capital is  PARIS.", "The capital is Lyon"],
    )
    assert [s.score for s in run.scores] == [1.0, 0.0]


def test_free_text_falls_back_honestly_and_writes_nothing(tmp_path: Path) -> None:
    rng = random.Random(5)
    words = (
        "the team shipped a careful change after reviewing logs metrics and customer feedback while keeping "
        "the rollout small enough to revert quickly if anything looked wrong"
    ).split()
    rows = [
        chat(f"Summarise incident {i}", " ".join(rng.choice(words) for _ in range(rng.randint(20, 40))) + ".") for i in range(40)
    ]
    out = tmp_path / "out"
    gen = generate_evaluator(write_rows(tmp_path / "prose.jsonl", rows), out)
    assert (gen.kind, gen.supported, gen.evaluator_path, gen.spec_path) == ("free_text", False, None, None)
    assert "no evaluator was generated; the run is judged by validation loss" in gen.reason
    assert not out.exists()
    tiny = generate_evaluator(DATASETS / "chat_minimal.jsonl", out)
    assert not tiny.supported and tiny.reason.startswith("Only 2 answers") and not out.exists()


def test_generated_evaluators_require_the_reference(tmp_path: Path) -> None:
    data = contacts(tmp_path)
    gen = generate_evaluator(data, tmp_path / "out")
    with pytest.raises(ValueError, match="ground_truth is required"):
        load(gen).evaluate([{"role": "assistant", "content": "{}"}])


def test_strip_thinking() -> None:
    assert strip_thinking("<think>a\nb</think>\n\nAnswer: 4") == "Answer: 4"
    assert strip_thinking("<think>x</think>one <THINK>y</THINK>two") == "one two"
    assert strip_thinking("the template opened the tag, so we start mid-thought</think> 42") == "42"
    assert strip_thinking("<think>cut off while still thinking") == ""
    assert strip_thinking("  no reasoning here ") == "no reasoning here"


def test_worst_examples_come_first() -> None:
    scores = [
        ExampleScore(index=0, score=0.9),
        ExampleScore(index=1, score=None, error="example 1: boom"),
        ExampleScore(index=2, score=0.1),
        ExampleScore(index=3, score=0.5),
    ]
    run = EvalRun(scores=scores, mean=None, errors=1)
    assert [s.index for s in worst_examples(run, 3)] == [1, 2, 3]
