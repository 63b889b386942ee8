"""Turn what a user types after ``/sft run`` into one typed :class:`RunSpec`.

Two forms, freely mixed in one text: ``key=value`` tokens and plain-English sentences.
Recognised phrases are consumed rule by rule; whatever is left must be filler ("please",
"and", punctuation), otherwise it is quoted back to the user. The parser never drops a
word it did not understand and never picks between two different values for one setting.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.domain.phrases import (
    COUNT,
    DATASET,
    DIR,
    EVAL_SET,
    EVALUATOR,
    FAMILY,
    FILLER,
    FINAL,
    GLUED_VERSION,
    HINT,
    HP,
    INT,
    JOBS,
    MAX,
    MODEL,
    NOT,
    NUM,
    NUMS,
    PRUNE,
    PUNCT,
    SAMPLES,
    SEP,
    SET,
    TRAILER,
    VERSION_LETTER,
    WORD_NUMBERS,
    file_name,
    resource_name,
)
from pipeline.domain.spec import EvalKind, Evaluation, RunSpec, SpecError, check_learning_rate, check_rank, make_spec


class InstructionError(SpecError):
    """Part of the instruction could not be understood; the message quotes that part."""


@dataclass
class _Draft:
    """Settings collected so far; a second, different value for one setting is an error."""

    fields: dict[str, object] = field(default_factory=dict)
    # (position in the text, name): models are listed in the order the user wrote them.
    models: list[tuple[int, str]] = field(default_factory=list)
    pos: int = 0  # where the phrase being applied starts
    candidates: list[tuple[int, float]] = field(default_factory=list)

    def set(self, name: str, value: object) -> None:
        old = self.fields.get(name)
        if name == "evaluation" and isinstance(old, Evaluation) and isinstance(value, Evaluation):
            # "use my own evaluator" and "evaluator accounts/.../x" describe the same choice.
            if old.kind is value.kind is EvalKind.EVALUATOR and not (old.ref and value.ref):
                self.fields[name] = old if old.ref else value
                return
        if old is not None and old != value:
            raise InstructionError(f"{name.replace('_', ' ')} was given twice ({_show(old)} and {_show(value)}): say it once")
        self.fields[name] = value

    def add_model(self, raw: str) -> None:
        name = normalise_model(raw)
        if re.fullmatch(FAMILY, name, re.IGNORECASE):
            raise InstructionError(f"{_q(raw)} is not a full model name: say which one, e.g. qwen3-8b")
        self.models.append((self.pos, name))

    def base_models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for _, name in sorted(self.models, key=lambda p: p[0])))


def _q(text: str, limit: int = 80) -> str:
    # Quoted back to Slack: long enough to recognise, short enough to never flood a thread.
    text = text.strip()
    return f"'{text}'" if len(text) <= limit else f"'{text[: limit - 1]}…'"


def _show(v: object) -> str:
    if isinstance(v, tuple):
        return ", ".join(_show(x) for x in v)
    if isinstance(v, Evaluation):
        return v.describe()
    return f"{v:g}" if isinstance(v, float) else str(v)


def normalise_model(raw: str) -> str:
    """The platform's short id for a model name as people type it ("Qwen3 32B" -> "qwen3-32b").

    Local paths and other accounts' models are kept whole; unknown names are kept as given.
    """
    s = raw.strip().strip("'\"")
    if s.startswith("accounts/"):
        public = _PUBLIC_MODEL.fullmatch(s)  # a model Fireworks publishes: its short id
        return public.group(1) if public else s
    if s.startswith(("/", "./", "../", "~")) or s.lower().endswith(".gguf"):
        return s
    if not re.fullmatch(MODEL, s, re.IGNORECASE):
        return s
    low = s.lower()
    family = re.match(FAMILY, low, re.IGNORECASE)  # IGNORECASE: "ſ" matched "s" above
    assert family is not None  # the full match above starts with a family
    head, rest = family.group(0), low[family.end() :]
    glued = re.match(r"\d+(?:[.p]\d+)*", rest)
    tokens = [t for t in re.split(r"[\s_-]+", rest[glued.end() if glued else 0 :]) if t]
    version = glued.group(0) if glued else None
    if version is None and tokens and re.fullmatch(r"[vkm]?\d+(?:[.p]\d+)*", tokens[0]):
        version = tokens.pop(0).lstrip("vkm")
    if version is not None:
        version = VERSION_LETTER.get(head, "") + version.replace(".", "p")
        head = f"{head}{version}" if head in GLUED_VERSION else f"{head}-{version}"
    return "-".join([head] + [t.replace(".", "p") for t in tokens])


def _float(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InstructionError(f"{what} {_q(text)} is not a number") from None


def _int(text: str, what: str) -> int:
    t = text.strip().lower()
    if t in WORD_NUMBERS:
        return WORD_NUMBERS[t]
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+", t):
        t = t.replace(",", "")
    scale = 1000 if t.endswith("k") else 1
    # 12 digits is far above every range; longer strings would only make int() slow.
    if not re.fullmatch(r"[-+]?\d{1,12}", t.removesuffix("k")):
        raise InstructionError(f"{what} must be a whole number, got {_q(text)}")
    return int(t.removesuffix("k")) * scale


def _split(value: str) -> list[str]:
    return [p for p in re.split(r"\s*(?:,|/|\band\b|\bor\b)\s*|\s+", value.strip()) if p]


def _bool(value: str, what: str) -> bool:
    v = value.strip().lower()
    if v in ("yes", "y", "true", "on", "1", "keep", "run", "do"):
        return True
    if v in ("no", "n", "false", "off", "0", "skip", "none"):
        return False
    raise InstructionError(f"{what} must be yes or no, got {_q(value)}")


def _evaluation(value: str) -> Evaluation:
    kind, _, ref = value.strip().partition(":")
    k = kind.lower().replace("-", "_")
    if k in ("loss", "validation_loss", "val_loss", "eval_loss") and not ref:
        return Evaluation(kind=EvalKind.LOSS)
    if k in ("generate", "generated") and not ref:
        return Evaluation(kind=EvalKind.GENERATE)
    if k in ("evaluator", "own", "mine"):
        return Evaluation(kind=EvalKind.EVALUATOR, ref=ref.strip() or None)
    if re.fullmatch(EVALUATOR, value.strip()):
        return Evaluation(kind=EvalKind.EVALUATOR, ref=value.strip().strip("'\""))
    raise InstructionError(f"eval {_q(value)} is not one I know: use loss, generate, evaluator or evaluator:<ref>")


def _candidate(text: str) -> tuple[int, float]:
    rank, sep, lr = text.replace("@", ":").partition(":")
    if not sep:
        raise InstructionError(f"candidate {_q(text)} should be rank:learning_rate, e.g. 16:1e-4")
    return check_rank(_int(rank, "LoRA rank")), check_learning_rate(_float(lr, "learning rate"))


def _path_value(value: str, what: str) -> str:
    if not value.strip():
        raise InstructionError(f"{what} needs a value")
    return value.strip().strip("'\"")


def _models(draft: _Draft, value: str) -> None:
    for name in value.split(","):
        if name.strip():
            draft.add_model(name)


_KeyHandler = Callable[[_Draft, str], None]
_BY_KEY: dict[str, _KeyHandler] = {
    "dataset": lambda d, v: d.set("dataset", _path_value(v, "dataset")),
    "eval_dataset": lambda d, v: d.set("eval_dataset", _path_value(v, "eval_dataset")),
    "model": lambda d, v: _models(d, v),
    "lr": lambda d, v: d.set("learning_rates", tuple(_float(x, "learning rate") for x in _split(v))),
    "rank": lambda d, v: d.set("lora_ranks", tuple(_int(x, "LoRA rank") for x in _split(v))),
    "candidates": lambda d, v: d.candidates.extend(_candidate(c) for c in _split(v.replace(" ", ""))),
    "epochs": lambda d, v: d.set("epochs", _int(v, "epochs")),
    "hp_samples": lambda d, v: d.set("hp_samples", _int(v, "hp_samples")),
    "parallel": lambda d, v: d.set("max_parallel", _int(v, "parallel")),
    "final": lambda d, v: d.set("final_run", _bool(v, "final")),
    "deploy": lambda d, v: d.set("deploy", _bool(v, "deploy")),
    "prune": lambda d, v: d.set("prune", _bool(v, "prune")),
    "convert": lambda d, v: d.set("convert", _bool(v, "convert")),
    "eval": lambda d, v: d.set("evaluation", _evaluation(v)),
    "evaluator": lambda d, v: d.set("evaluation", Evaluation(kind=EvalKind.EVALUATOR, ref=_path_value(v, "evaluator"))),
    "eval_examples": lambda d, v: d.set("eval_examples", _int(v, "eval_examples")),
}
_PUBLIC_MODEL = re.compile(r"accounts/fireworks/models/([^/]+)")  # the base models Fireworks publishes
_ALIASES = {
    "data": "dataset", "models": "model", "base_model": "model", "base_models": "model",
    "lrs": "lr", "learning_rate": "lr", "learning_rates": "lr", "ranks": "rank", "lora_rank": "rank",
    "lora_ranks": "rank", "epoch": "epochs", "max_parallel": "parallel", "final_run": "final",
    "pruning": "prune", "evaluation": "eval", "validation_dataset": "eval_dataset", "candidate": "candidates",
}  # fmt: skip
_KV = re.compile(r"""(?<!\S)(?P<key>[A-Za-z_][\w-]*)=(?P<val>(?:"[^"]*"?|'[^']*'?|[^\s"'])*)""")


def _unquote(value: str) -> str:
    try:
        return " ".join(shlex.split(value))
    except ValueError:  # an unbalanced quote: take the text as typed, minus the quote marks
        return value.replace('"', "").replace("'", "")


def _apply_kv(match: re.Match[str], draft: _Draft) -> str:
    key = match.group("key").lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _BY_KEY:
        known = ", ".join(sorted([*_BY_KEY, *_ALIASES]))
        raise InstructionError(f"unknown setting {_q(match.group('key'))}: known settings are {known}")
    raw = match.group("val")
    # "dataset=x.jsonl." ends a sentence; a quoted value keeps whatever it encloses.
    value = _unquote(raw if raw.endswith(("'", '"')) else raw.rstrip(".,;!?"))
    if not value.strip():
        raise InstructionError(f"{match.group('key')}= needs a value")
    draft.pos = match.start()
    _BY_KEY[key](draft, value)
    return _blank(match)


_Handler = Callable[[re.Match[str], _Draft], object]


def _to(name: str, convert: Callable[[str], object]) -> _Handler:
    return lambda m, d: d.set(name, convert(m.group("v")))


def _const(name: str, value: object) -> _Handler:
    return lambda m, d: d.set(name, value)


def _path(m: re.Match[str]) -> str:
    return m.group("v").strip("'\"").rstrip(".")


def _generic_model(m: re.Match[str], d: _Draft) -> bool:
    if m.group("v").lower() in FILLER:
        return False  # "use the as base model" is not a model name: leave it to be quoted
    d.add_model(m.group("v").rstrip("."))
    return True


def _rates_before(m: re.Match[str], d: _Draft) -> bool:
    """ "1e-4 and 5e-5 learning rates"; a number list without that suffix is left for other rules."""
    if m.group("lrs") is None:
        return False
    d.set("learning_rates", tuple(_float(x, "learning rate") for x in _split(m.group("v"))))
    return True


def _pairs(m: re.Match[str], d: _Draft) -> None:
    d.candidates.append(_candidate(f"{m.group('r')}:{m.group('lr')}"))


_LOSS, _GEN = Evaluation(kind=EvalKind.LOSS), Evaluation(kind=EvalKind.GENERATE)
_OWN = Evaluation(kind=EvalKind.EVALUATOR)
_nothing: _Handler = lambda m, d: None  # noqa: E731

# Order matters: specific phrases (eval dataset, evaluator, paths) go before the generic ones
# that would otherwise claim their words, and counts go before number lists.
_RULES: list[tuple[str, _Handler]] = [
    (rf"(?:\buse\s+)?(?P<v>{DATASET})\s+(?:as|for)\s+(?:the\s+|an?\s+|my\s+)?{EVAL_SET}\b", lambda m, d: d.set("eval_dataset", _path(m))),
    (rf"\b{EVAL_SET}{SET}(?P<v>{DATASET})", lambda m, d: d.set("eval_dataset", _path(m))),
    (rf"\b(?:evaluate|validate)\s+(?:on|against|with|using)\s+(?P<v>{DATASET})", lambda m, d: d.set("eval_dataset", _path(m))),
    (rf"(?:\b(?:my|our|the)\s+)?(?:own\s+)?\bevaluator{SET}(?P<v>{EVALUATOR})", lambda m, d: d.set("evaluation", _evaluation(f"evaluator:{_path(m)}"))),
    (rf"(?P<v>{EVALUATOR})(?:\s+as\s+(?:the\s+|my\s+|our\s+)?evaluator\b)?", lambda m, d: d.set("evaluation", _evaluation(f"evaluator:{_path(m)}"))),
    (rf"(?:\b(?:the|my|our)\s+)?(?:\btrain(?:ing)?\s+)?(?:\b(?:data\s*set|data|file)\b{SET})?(?P<v>{DATASET})", lambda m, d: d.set("dataset", _path(m))),
    (rf"(?P<v>{resource_name('models')}|{file_name('gguf')})", lambda m, d: d.add_model(_path(m))),
    (rf"\b(?:with|using|across|from|models?|fine-?tune|train){SET}(?:the\s+)?(?:base\s+)?(?:model{SET})?(?P<v>{DIR})", lambda m, d: d.add_model(_path(m))),
    (rf"(?P<v>{DIR})\s+as\s+(?:the\s+|a\s+|my\s+)?base\s+model\b", lambda m, d: d.add_model(_path(m))),
    (rf"(?P<v>{MODEL})", lambda m, d: d.add_model(m.group("v"))),
    (rf"\b(?:use|with)\s+(?P<v>[\w~][^\s,;{SEP}]*)\s+as\s+(?:the\s+|a\s+|my\s+|our\s+)?base\s+model\b", _generic_model),
    (rf"\bbase\s+models?{SET}(?P<v>[\w~][^\s,;{SEP}]*)", _generic_model),
    (rf"(?:\b(?:for|with)\s+)?(?P<v>{INT})\s+epochs?\b(?:\s+(?:each|per\s+candidate|for\s+(?:each|every)\s+(?:candidate|job|run)))?", _to("epochs", lambda v: _int(v, "epochs"))),
    (rf"\bepochs?{SET}(?P<v>{INT})", _to("epochs", lambda v: _int(v, "epochs"))),
    (r"\btrain\s+(?:each|every|all|the)\s+(?:of\s+the\s+)?(?:candidates?|models?|jobs?|runs?|ones?)\b", _nothing),
    (rf"\b(?:evaluate|eval|score)\s+(?:on\s+)?{MAX}(?P<v>{COUNT})\s+(?:held[\s-]*out\s+)?{SAMPLES}\b", _to("eval_examples", lambda v: _int(v, "evaluation examples"))),
    (rf"(?P<v>{COUNT})\s+(?:held[\s-]*out\s+|eval(?:uation)?\s+|test\s+){SAMPLES}(?:\s+(?:for|in|during)\s+(?:the\s+)?eval(?:uation)?)?\b", _to("eval_examples", lambda v: _int(v, "evaluation examples"))),
    (rf"(?P<v>{COUNT})\s+{SAMPLES}\s+(?:for|in|during)\s+(?:the\s+)?(?:eval(?:uation)?|scoring)\b", _to("eval_examples", lambda v: _int(v, "evaluation examples"))),
    (rf"(?P<v>{COUNT})\s+(?:training\s+)?{SAMPLES}\s+(?:for|in|during|when)\s+(?:the\s+)?{HP}(?:ing)?\b", _to("hp_samples", lambda v: _int(v, "HP-tuning samples"))),
    (rf"\b{HP}\s+(?:on|with|using)\s+(?P<v>{COUNT})\s+{SAMPLES}\b", _to("hp_samples", lambda v: _int(v, "HP-tuning samples"))),
    (rf"\b(?:sub[\s-]*sample|hp[\s_-]*samples?)\s*(?:down\s+)?{SET}(?P<v>{COUNT})(?:\s+{SAMPLES})?", _to("hp_samples", lambda v: _int(v, "HP-tuning samples"))),
    (rf"{MAX}(?P<v>{INT})\s+(?:{JOBS}\s+)?(?:in\s+parallel|at\s+(?:once|a\s+time|the\s+same\s+time)|concurrently|simultaneously)\b", _to("max_parallel", lambda v: _int(v, "parallel jobs"))),
    (rf"{MAX}(?P<v>{INT})\s+(?:parallel|concurrent|simultaneous)\s+{JOBS}\b", _to("max_parallel", lambda v: _int(v, "parallel jobs"))),
    (rf"\b(?:parallelism|concurrency|parallel(?:\s+jobs)?){SET}(?P<v>{INT})", _to("max_parallel", lambda v: _int(v, "parallel jobs"))),
    (r"\bcandidates?\s*(?::|=|are)?\s*(?=\d+\s*[:@])", _nothing),
    (rf"(?<![\w.])(?P<r>\d+)\s*[:@]\s*(?P<lr>{NUM})", _pairs),
    (rf"\b(?:lora\s+)?rank\s+(?P<r>\d+)\s+(?:with|at|@)\s+(?:an?\s+)?(?:lr|learning\s+rate){SET}(?P<lr>{NUM})", _pairs),
    (rf"\b(?:learning[\s_-]*rates?|lrs?)(?:\s+at)?{SET}(?P<v>{NUMS})", _to("learning_rates", lambda v: tuple(_float(x, "learning rate") for x in _split(v)))),
    # The suffix is optional so the rule matches (and moves past) any list of numbers: with a
    # required suffix the engine retried from every number of a long list, quadratic in its length.
    (rf"(?P<v>{NUMS})(?P<lrs>\s+(?:as\s+(?:the\s+)?|for\s+(?:the\s+)?)?(?:learning[\s-]*rates?|lrs?)\b)?", _rates_before),
    (rf"\b(?:lora[\s_-]*)?ranks?{SET}(?P<v>{NUMS})", _to("lora_ranks", lambda v: tuple(_int(x, "LoRA rank") for x in _split(v)))),
    (rf"\b{NOT}\s+(?:do\s+|run\s+)?(?:the\s+|a\s+|any\s+)?{FINAL}(?:\s+(?:run|training|re-?train(?:ing)?|step|phase|job))?\b", _const("final_run", False)),
    (rf"\b(?:do|run|include|keep|with)\s+(?:the\s+|a\s+)?{FINAL}\s+(?:run|training|re-?train(?:ing)?)\b", _const("final_run", True)),
    (rf"\b{NOT}\s+{PRUNE}", _const("prune", False)),
    (PRUNE, _const("prune", True)),
    (rf"\b{NOT}\s+deploy(?:ment|ing)?\b{TRAILER}", _const("deploy", False)),
    (rf"\bdeploy(?:ment)?\b{TRAILER}", _const("deploy", True)),
    (rf"\b{NOT}\s+(?:data\s+)?conver(?:t|sion|ting)\b{TRAILER}", _const("convert", False)),
    (rf"\b(?:(?:apply|do)\s+(?:the\s+)?)?(?:data\s+)?conver(?:t|sion)\b{TRAILER}", _const("convert", True)),
    (r"\b(?:just\s+|only\s+)?(?:the\s+)?(?:validation|val|eval(?:uation)?|held[\s-]*out)[\s_-]+loss(?:\s+only)?(?:\s+(?:for|as)\s+(?:the\s+)?(?:evaluation|eval|metric|scoring))?(?:\s+is\s+(?:fine|ok|okay|enough|good|sufficient))?", _const("evaluation", _LOSS)),
    (r"\b(?:just\s+(?:the\s+)?loss|loss\s+only)\b", _const("evaluation", _LOSS)),
    (r"\b(?:(?:auto[\s-]*)?generate|create|write|build|make)\s+(?:an?\s+|the\s+|one\s+)?(?:new\s+)?evaluator\b(?:\s+for\s+(?:me|us))?", _const("evaluation", _GEN)),
    (r"\b(?:(?:agent|auto|bot|llm|ai)[\s-]*)?generated\s+evaluator\b|\b(?:an?\s+)?evaluator\s+generated(?:\s+from\s+(?:the\s+)?data(?:set)?)?", _const("evaluation", _GEN)),
    (r"\b(?:my|our)\s+(?:own\s+)?evaluator\b", _const("evaluation", _OWN)),
    # What is left below carries no setting: verbs, politeness and the words around a value.
    (r"\b(?:(?:run|start|launch|kick\s+off|do|begin)\s+)?(?:an?\s+|the\s+)?(?:lora\s+)?(?:supervised\s+fine[\s-]*tun(?:ing|e)|sft|fine[\s-]*tun(?:ing|e)|finetun(?:ing|e)|train(?:ing)?)(?:\s+(?:job|run|sweep)s?)?\b", _nothing),
    (r"\bas\s+(?:the\s+|a\s+|my\s+|our\s+)?base\s+models?\b|\b(?:the\s+)?(?:base\s+)?models?\b|\blora\b", _nothing),
    (r"\b(?:for|as)\s+(?:the\s+)?(?:evaluation|eval)\b", _nothing),
    (r"\b(?:i[’']?d|we[’']?d|i\s+would|we\s+would)\s+like(?:\s+to)?\b|\b(?:can|could|would)\s+you\b|\blet[’']?s\b|\b(?:i|we)\s+want(?:\s+to)?\b", _nothing),
    (r"\b(?:thank\s+you|looks\s+good|sounds\s+good|go\s+ahead|lgtm)\b|<[@#!][^<>\s]{0,200}>|:[\w+-]{1,100}:", _nothing),
]  # fmt: skip
_COMPILED = [(re.compile(p, re.IGNORECASE), h) for p, h in _RULES]


def _blank(match: re.Match[str]) -> str:
    # Same length as the phrase, so later positions still point into the original text.
    return SEP.ljust(len(match.group(0))) if match.group(0) else ""


def _apply(match: re.Match[str], handler: _Handler, draft: _Draft) -> str:
    draft.pos = match.start()
    return match.group(0) if handler(match, draft) is False else _blank(match)


def _consume(text: str, draft: _Draft) -> str:
    for rx, handler in _COMPILED:
        text = rx.sub(lambda m, handler=handler: _apply(m, handler, draft), text)  # type: ignore[misc]
    return text


def _leftovers(text: str) -> list[str]:
    bad: list[str] = []
    for chunk in re.split(rf"{SEP}|[\n;!?]+|[.,:]+(?=\s|$)", text):
        words = [w.strip(PUNCT).lower() for w in chunk.split()]
        if any(w and w not in FILLER for w in words):
            bad.append(chunk.strip(PUNCT + " \t"))
    return bad


def parse_instruction(text: str) -> RunSpec:
    """The run spec a ``/sft run`` text asks for (key=value tokens, English, or both).

    Raises InstructionError quoting what it could not understand, and SpecError (from
    the spec) naming a value outside what the platform accepts.
    """
    draft = _Draft()
    rest = _KV.sub(lambda m: _apply_kv(m, draft), text.replace(SEP, " "))
    rest = _consume(rest, draft)
    bad = _leftovers(rest)
    if bad:
        quoted = ", ".join(_q(b) for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise InstructionError(f"I could not understand: {quoted}. {HINT}")
    fields = dict(draft.fields)
    if draft.models:
        fields["base_models"] = draft.base_models()
    if draft.candidates:
        fields["candidates"] = tuple({"lora_rank": r, "learning_rate": lr} for r, lr in dict.fromkeys(draft.candidates))
    return make_spec(**fields)
