"""Bounded types for every value that crosses the API's edge (docs/limits.md).

Numbers are finite and in a stated range (JSON's ``Infinity``, ``NaN`` and ``1e300``
are refused); ids fit a signed 64-bit column, as SQLite and PostgreSQL store them;
strings have a length bound and no NUL (PostgreSQL cannot store one); names a person
gives (tasks, nodes, environments) have no control characters either, so that they
print as what they are. Each refusal is a pydantic error, so the API's 422 answer
names the field.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

KiB = 1024
MiB = 1024 * KiB

MAX_ID = 2**63 - 1
"""Largest id: ids are signed 64-bit integers in the database."""
MAX_ID_DIGITS = len(str(MAX_ID))

MAX_BODY = 1 * MiB
"""Largest request body, except the streamed uploads (files, environment imports)."""
MAX_SCRIPT_BODY = 16 * MiB
"""Largest script (or stdin) sent to a workspace shell."""

MAX_COMMAND_ARGS = 4096
MAX_ARGUMENT = 128 * KiB
"""Linux refuses a single argument or environment string longer than 128 KiB."""
MAX_COMMAND_TOTAL = 128 * KiB
MAX_ENV_VARS = 256
MAX_ENV_KEY = 256
MAX_ENV_VALUE = 32 * KiB
MAX_ENV_TOTAL = 256 * KiB
MAX_MOUNTS = 64
MAX_TARGETS = 256
MAX_TARGET = 256
MAX_QUERY_TEXT = 4096
"""Longest free text in a URL's query (a URL must stay under the HTTP server's 64 KiB)."""
MAX_PATH = 4096
"""Linux's PATH_MAX: mount paths, file paths."""
MAX_WORKDIR = 1024
"""A task's working directory (as long as the database column that keeps it)."""
MAX_TASK_NAME = 128
MAX_NODE_NAME = 63
MAX_ENVIRONMENT_NAME = 128
MAX_IMAGE = 256
MAX_SSH_KEY = 16 * KiB
MAX_URL = 512
MAX_TEXT = 64 * KiB
"""Free text a runner reports (a progress line, a refusal)."""
MAX_ERROR = 2048
"""A task's error message as stored; a runner's longer one is cut to it."""
MAX_SHORT = 256
"""Short strings: states, versions, digests, GPU names, sensor labels."""
MAX_LIST = 4096
"""Lists a runner reports: CPUs, GPUs, NUMA zones, tasks, sensor readings."""

MAX_CORES = 4096
MAX_GPUS = 64
MAX_MEMORY = 2**63 - 1
MAX_TIMEOUT = 366 * 24 * 3600
"""Longest task timeout: a year (and a day) in seconds."""
MIN_PRIORITY, MAX_PRIORITY = -1000, 1000
MAX_PERCENT = 100_000.0
"""CPU percentages add up over CPUs (100 per CPU), so they may pass 100."""
MAX_MEASURE = 1e15
"""Bound of any other measurement (temperatures, watts, load averages)."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAKS = frozenset("\u2028\u2029")


def name_problem(text: str) -> str | None:
    """Why ``text`` cannot be a name (a control, line-break or bidi-override character),
    or None when it can."""
    for ch in text:
        if unicodedata.category(ch) == "Cc" or ch in _LINE_BREAKS:
            return f"control character {ch!r} is not allowed in a name"
        if ch in _BIDI_CONTROLS:
            return f"bidirectional override {ch!r} is not allowed in a name"
    return None


def _name(text: str) -> str:
    problem = name_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return text


_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
_IMAGE = re.compile(
    rf"(?:(?:{_DOMAIN}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
    r"|(?:sha256:)?[0-9a-f]{12,64})",
    re.ASCII,
)


def _image(text: str) -> str:
    if _IMAGE.fullmatch(text) is None:
        raise ValueError(
            f"{text[:80]!r} is not a Docker image reference (like 'debian:bookworm' or "
            "'registry.example:5000/team/app:1.2'; repository names are lowercase)"
        )
    return text


def _image_or_empty(text: str) -> str:
    return _image(text) if text else text


def _task_id(text: str) -> str:
    if parse_id(text) is None:
        raise ValueError(f"{text[:40]!r} is not a task id (decimal digits, below 2**63)")
    return text


def _report_text(value: object) -> object:
    """A runner's message as it can be stored: NUL replaced, cut to MAX_ERROR."""
    if not isinstance(value, str):
        return value
    value = value.replace("\x00", "\ufffd")
    return value if len(value) <= MAX_ERROR else value[: MAX_ERROR - 1] + "…"


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("NUL characters are not allowed")
    return text


NoNul = AfterValidator(_no_nul)
"""Refuses NUL characters (use with a length bound)."""
NameRule = AfterValidator(_name)
"""Refuses control characters and bidirectional overrides (use with a length bound)."""


Id = Annotated[int, Field(ge=0, le=MAX_ID)]
"""A database id: 0..2**63-1."""
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
"""Any integer a signed 64-bit column stores."""
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A non-negative integer that fits a signed 64-bit column (bytes, sequence numbers)."""
SmallIndex = Annotated[int, Field(ge=0, le=2**31 - 1)]
"""A CPU, NUMA zone or GPU index."""
ExitCode = Annotated[int, Field(ge=-(2**31), le=2**32 - 1)]
"""A process's exit status as runtimes report it (signed or unsigned 32-bit)."""
Percent = Annotated[float, Field(ge=0, le=MAX_PERCENT, allow_inf_nan=False)]
Measure = Annotated[float, Field(ge=-MAX_MEASURE, le=MAX_MEASURE, allow_inf_nan=False)]
Seconds = Annotated[float, Field(gt=0, le=MAX_TIMEOUT, allow_inf_nan=False)]
"""A positive duration no longer than :data:`MAX_TIMEOUT`."""
Short = Annotated[str, Field(max_length=MAX_SHORT), NoNul]
QueryText = Annotated[str, Field(max_length=MAX_QUERY_TEXT), NoNul]
TaskIdText = Annotated[str, Field(min_length=1, max_length=MAX_ID_DIGITS), AfterValidator(_task_id)]
"""A task id as text, as the host gives it: decimal digits, below 2**63."""
RunnerTaskId = Annotated[str, Field(min_length=1, max_length=64), NameRule]
"""A task id in a runner's own messages (a runner runs what it is given; the host
ignores ids that are not its own)."""
ErrorText = Annotated[str, BeforeValidator(_report_text)]
"""An error a runner reports: never refused, kept to what the database stores."""
WorkdirText = Annotated[str, Field(max_length=MAX_WORKDIR), NoNul]
Text = Annotated[str, Field(max_length=MAX_TEXT), NoNul]
Url = Annotated[str, Field(min_length=1, max_length=MAX_URL), NameRule]
PathText = Annotated[str, Field(max_length=MAX_PATH), NoNul]
"""A path: at most PATH_MAX characters, no NUL (its other rules are checked where used)."""
TaskName = Annotated[str, Field(min_length=1, max_length=MAX_TASK_NAME), NameRule]
NodeName = Annotated[str, Field(min_length=1, max_length=MAX_NODE_NAME), NameRule]
ImageName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_IMAGE, description="a Docker image reference or id"),
    AfterValidator(_image),
]
RunImage = Annotated[str, Field(max_length=MAX_IMAGE), AfterValidator(_image_or_empty)]
"""The image a runner starts a task from; empty for a native task."""
EnvironmentName = Annotated[str, Field(min_length=1, max_length=MAX_ENVIRONMENT_NAME), NameRule]
Argument = Annotated[str, Field(max_length=MAX_ARGUMENT), NoNul]
EnvKey = Annotated[str, Field(min_length=1, max_length=MAX_ENV_KEY), NoNul]
EnvValue = Annotated[str, Field(max_length=MAX_ENV_VALUE), NoNul]
TargetText = Annotated[str, Field(min_length=1, max_length=MAX_TARGET), NameRule]


def parse_id(text: str) -> int | None:
    """``text`` as an id, or None when it is not decimal digits or beyond 64 bits."""
    if not text.isascii() or not text.isdigit() or len(text) > MAX_ID_DIGITS:
        return None
    value = int(text)
    return value if value <= MAX_ID else None
