"""The bundled demo dataset: sentences about people -> the same facts as JSON.

A task where fine-tuning visibly helps a small model (it must learn the exact output
format) and an evaluator can check outputs objectively. Generated deterministically so the
shipped file can be re-made and checked byte for byte (tests/test_demo_dataset.py).
"""

from __future__ import annotations

import json
import random
from importlib import resources
from pathlib import Path

DEMO_REF = "sftbot:demo"
DEMO_FILE = "demo_contacts.jsonl"
# 100 rows, not more: the demo's final run trains on the whole train split (90 rows), and at
# about a second of CPU per row on a 2-core machine that keeps all seven phases in minutes.
DEMO_ROWS = 100
SYSTEM = "Extract the person's name, age, job and city from the sentence. Reply with JSON only."

_FIRST = [
    "Maria",
    "John",
    "Aiko",
    "Lars",
    "Fatima",
    "Pedro",
    "Chen",
    "Olga",
    "Samuel",
    "Priya",
    "Tomas",
    "Amara",
    "Lucas",
    "Ines",
    "Kenji",
    "Nadia",
    "Omar",
    "Greta",
    "Ravi",
    "Sofia",
    "Emeka",
    "Hana",
    "Ivan",
    "Lea",
]
_LAST = [
    "Lopez",
    "Smith",
    "Tanaka",
    "Nilsson",
    "Haddad",
    "Silva",
    "Wei",
    "Petrova",
    "Okafor",
    "Sharma",
    "Novak",
    "Diallo",
    "Martin",
    "Costa",
    "Sato",
    "Rahman",
    "Farouk",
    "Berg",
    "Iyer",
    "Rossi",
    "Obi",
    "Kim",
    "Popov",
    "Roux",
]
_JOBS = [
    "nurse",
    "teacher",
    "engineer",
    "chef",
    "pilot",
    "lawyer",
    "baker",
    "designer",
    "farmer",
    "plumber",
    "architect",
    "librarian",
    "dentist",
    "journalist",
    "electrician",
    "pharmacist",
]
_CITIES = [
    "Madrid",
    "Boston",
    "Osaka",
    "Oslo",
    "Beirut",
    "Lisbon",
    "Shanghai",
    "Kyiv",
    "Lagos",
    "Pune",
    "Prague",
    "Dakar",
    "Lyon",
    "Porto",
    "Nagoya",
    "Dhaka",
    "Cairo",
    "Bergen",
    "Chennai",
    "Rome",
]
_TEMPLATES = [
    "{name}, {age}, works as a {job} in {city}.",
    "{name} is a {age}-year-old {job} living in {city}.",
    "Meet {name}: {job}, {age} years old, based in {city}.",
    "In {city}, {name} ({age}) has a job as a {job}.",
    "{name} moved to {city} and works as a {job}; {name_first} is {age}.",
    "At {age}, {name} is a {job} from {city}.",
]


def generate(n: int = DEMO_ROWS, seed: int = 7) -> list[dict[str, object]]:
    """``n`` chat rows; the same ``n`` and ``seed`` always give the same rows."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for _ in range(n):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        fact = {"name": f"{first} {last}", "age": rng.randint(19, 78), "job": rng.choice(_JOBS), "city": rng.choice(_CITIES)}
        sentence = rng.choice(_TEMPLATES).format(name_first=first, **fact)
        answer = json.dumps(fact, separators=(", ", ": "))
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": sentence},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return rows


def render(rows: list[dict[str, object]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def demo_path() -> Path:
    """The shipped demo file inside the installed package."""
    return Path(str(resources.files("pipeline.data").joinpath(DEMO_FILE)))


def resolve_dataset_ref(ref: str) -> str:
    """Map the bundled dataset's reference to its file; anything else passes through."""
    return str(demo_path()) if ref == DEMO_REF else ref


if __name__ == "__main__":  # re-make the shipped file: python -m pipeline.dataset.demo_data
    demo_path().write_text(render(generate()), encoding="utf-8")
