"""Only the composition root (``bot/``) chooses a platform by name; everywhere else a platform is
asked what it offers (``facts.capabilities``) and what it costs (``facts.prices``, a run's and a
plan's ``billed``). This walks the product code's syntax trees, and greps its templates, for a
comparison with a platform's name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("pipeline", "handlers", "templates")  # bot/ is the composition root: it may
NAMES = {"local", "fireworks", "memory"}  # the platforms there are (memory: the tests' in-process fake)
COMPARES = (ast.Eq, ast.NotEq, ast.Is, ast.IsNot, ast.In, ast.NotIn)
# A template comparing a platform name, or a name against a platform's literal.
TEMPLATE = re.compile(r"""platform\s*(==|!=|\bin\b)|(==|!=)\s*["'](local|fireworks|memory)["']""")


def _named(node: ast.expr) -> bool:
    """A platform name written out: "local", or ("local", ...) on the right of ``in``."""
    if isinstance(node, ast.Constant):
        return node.value in NAMES
    return isinstance(node, ast.Tuple | ast.List | ast.Set) and any(_named(e) for e in node.elts)


def _platform_name(node: ast.expr) -> bool:
    """``run.platform``, ``plan.platform``, ``platform.name``, ``ctx.platform.facts.name``, ..."""
    if not isinstance(node, ast.Attribute):
        return False
    text = ast.unparse(node)
    return node.attr == "platform" or (node.attr == "name" and ("platform" in text or "facts" in text))


def _literal(node: ast.expr) -> bool:
    """A string, or a constant's name (``LOCAL``): what a name check would compare against."""
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) or (isinstance(node, ast.Name) and node.id.isupper())


def name_checks(source: str, filename: str = "<code>") -> list[str]:
    """Every comparison with a platform's name in ``source``, as ``file:line: code``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Compare) and any(isinstance(op, COMPARES) for op in node.ops):
            sides = [node.left, *node.comparators]
            if any(_named(s) for s in sides) or (any(_platform_name(s) for s in sides) and any(_literal(s) for s in sides)):
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.match_case) and isinstance(node.pattern, ast.MatchValue) and _named(node.pattern.value):
            found.append(f"{filename}:{node.pattern.lineno}: case {ast.unparse(node.pattern.value)}")
    return found


def product_files(suffix: str) -> list[Path]:
    return sorted(p for folder in PRODUCT for p in (ROOT / folder).rglob(f"*{suffix}"))


def test_no_product_code_outside_the_composition_root_compares_a_platform_name() -> None:
    files = product_files(".py")
    assert len(files) > 100  # the whole core and the Slack surface, not an empty glob
    found = [hit for path in files for hit in name_checks(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert found == []


def test_no_template_compares_a_platform_name() -> None:
    templates = product_files(".j2")
    assert any(p.name == "final_report.md.j2" for p in templates)
    found = [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in templates
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1)
        if TEMPLATE.search(line)
    ]
    assert found == []


@pytest.mark.parametrize(
    "code",
    [
        'if platform == "local": pass',
        'x = run.platform != "fireworks"',
        'ok = plan.platform in ("local", "memory")',
        'ok = name not in ["fireworks"]',
        "ok = ctx.platform.facts.name == LOCAL",
        'ok = self.platform.name is "local"',
        'match which:\n    case "local":\n        pass',
    ],
)
def test_the_walk_finds_every_spelling_of_a_name_check(code: str) -> None:
    assert len(name_checks(code)) == 1, code


@pytest.mark.parametrize(
    "code",
    [
        "ok = run.platform != platform.facts.name",  # the same platform? (teardown refuses another's run)
        'ok = account == PUBLIC_ACCOUNT or kind == "local_file"',  # an account, a kind: not a platform
        "ok = not run.billed and plan.platform",
    ],
)
def test_the_walk_leaves_questions_that_are_not_name_checks(code: str) -> None:
    assert name_checks(code) == [], code


def test_the_template_grep_finds_a_name_check() -> None:
    assert TEMPLATE.search('{% if platform == "local" %}') and TEMPLATE.search("{{ x if s.kind != 'fireworks' }}")
    assert not TEMPLATE.search("{% if not run.billed %}platform `{{ run.platform }}`")
