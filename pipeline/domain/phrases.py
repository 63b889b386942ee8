"""The vocabulary of the instruction parser: the regular expressions for the things people
name (datasets, models, numbers, counts) and the words around them."""

from __future__ import annotations

import string

# Marks where a recognised phrase was removed, so the words around it stay apart.
SEP = "\ue000"
HINT = "Say it another way, or use key=value, e.g. dataset=... model=qwen3-8b lr=1e-4 rank=16"
FILLER = frozenset(
    "please pls and or also then the a an use using with across on for to of in at ok okay approved approve "
    "thanks thank you yes sure just so now is are it me us both all each too hi hello hey run do go ahead i we".split()
)
PUNCT = string.punctuation + "“”‘’–—…"
WORD_NUMBERS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}

NAME = r"[\w-]+(?:\.[\w-]+)*"  # a resource name; never swallows a sentence's full stop


def resource_name(kind: str) -> str:
    return rf"(?<![\w/])accounts/{NAME}/{kind}/{NAME}"


def file_name(ext: str) -> str:
    return rf"""(?:"[^"\n]*\.{ext}"|'[^'\n]*\.{ext}'|(?<![\w/~.-])[\w~./-]*\.{ext}(?![\w/-]))"""


DATASET = rf"(?:{resource_name('datasets')}|{file_name('jsonl')})"
EVALUATOR = rf"(?:{resource_name('evaluators')}|{file_name('py')})"
DIR = r"(?<![\w/~.-])(?:~|\.{1,2})?/[\w.~-]+(?:/[\w.~-]+)*/?"
FAMILY = r"(?:gpt-oss|codellama|llama|qwq|qwen|mistral|mixtral|gemma|deepseek|phi|glm|kimi|minimax|nemotron)"
# Space-separated parts are limited to sizes and well-known suffixes so "qwen3 8b and 3 epochs"
# stops at the model; hyphen-joined parts are one name by construction and may be anything.
SPACED = r"(?:\d+(?:\.\d+)?[bmk]|\d+x\d+b|a\d+b|instruct|chat|coder|vl|moe|thinking|distill)(?!\w)"
MODEL = (
    rf"(?<![\w/.~-]){FAMILY}(?:\d+(?:[.p]\d+)*|(?:[-_]|\s+)[vkm]?\d+(?:[.p]\d+)*(?!\w))?"
    rf"(?:[-_](?:\d+(?:\.\d+)?[a-z]*|[a-z][a-z\d]*)|\s+{SPACED})*(?![\w/])"
)
# Families whose platform ids put a letter before the version ("llama-v3p3", "kimi-k2p5").
VERSION_LETTER = {"llama": "v", "codellama": "v", "deepseek": "v", "kimi": "k", "minimax": "m"}
GLUED_VERSION = {"qwen", "qwq", "phi"}  # "qwen3-8b", not "qwen-3-8b"

NUM = r"(?<![\w.])-?(?:\d+(?:\.\d+)?|\.\d+)(?:e[-+]?\d+)?(?!\w)"
NUMS = rf"{NUM}(?:(?:\s*,\s*(?:(?:and|or)\s+)?|\s+(?:and|or)\s+|\s*/\s*){NUM})*"
INT = r"(?<![\w.])(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten)(?![\w.]\w)"
COUNT = r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+|\d+k?)(?![\w.]\w)"
SET = r"\s*(?:of\s+|is\s+|are\s+|to\s+|:\s*|=\s*)?"
MAX = r"(?:\b(?:up\s+to|at\s+most|max(?:imum)?(?:\s+of)?|no\s+more\s+than)\s+)?"
JOBS = r"(?:(?:training|sft|fine[\s-]*tuning|candidate)\s+)?(?:jobs?|runs?|trainings?|candidates?)"
SAMPLES = r"(?:samples?|examples?|rows?|records?)"
HP = r"(?:hp|hyper[\s-]*param(?:eter)?s?)[\s-]*(?:tuning|search|sweep)"
EVAL_SET = r"(?:eval(?:uation)?|validation|held[\s-]*out|test)[\s_-]*(?:data\s*set|data|set|split)"
NOT = r"(?:don[’']?t|do\s+not|never|no|skip(?:\s+the)?|without)"
TRAILER = r"(?:\s+(?:it|them|the\s+(?:model|winner|result|final\s+model|data(?:set)?)))?"
# "stop hopeless candidates early", "prune bad candidates", "early-stop weak runs", "with pruning"
PRUNE = (
    rf"\b(?:(?:stop|kill|cancel|drop)\s+(?:the\s+)?(?:hopeless|bad|poor|weak|losing|worst)\s+{JOBS}(?:\s+early)?"
    rf"|(?:early[\s-]*stop(?:ping)?|prune|pruning)(?:\s+(?:the\s+)?(?:hopeless|bad|poor|weak|losing|worst)\s+{JOBS})?(?:\s+early)?)\b"
)
FINAL = r"(?:full[\s-]*data(?:set)?\s+)?(?:final(?:\s+full[\s-]*data(?:set)?)?|full[\s-]*data(?:set)?|re-?train(?:ing)?)"
