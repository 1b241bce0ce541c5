"""Where Kawa's configuration file is and what one section of it says: the file's
values, then ``KAWA_<SECTION>_<KEY>`` environment variables over them.

Standard library only (no pathlib, no pydantic) so that the quick CLI path reads the
client configuration as cheaply as it can; :mod:`kawa.settings` validates the same
values into its models.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

TYPE_CHECKING = False  # typing is not imported at run time: the quick CLI path skips it
if TYPE_CHECKING:
    from typing import Any

CLIENT_URL = "http://127.0.0.1:8420"
"""The host a client talks to unless configured otherwise."""
CLIENT_TIMEOUT = 30.0
"""Seconds a client waits for an answer unless configured otherwise."""


class ConfigError(ValueError):
    """The configuration file or an override is invalid."""


def config_path() -> str:
    """``$KAWA_CONFIG`` when set, else ``kawa/config.toml`` under ``$XDG_CONFIG_HOME``
    (default ``~/.config``)."""
    explicit = os.environ.get("KAWA_CONFIG")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "kawa", "config.toml")


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file's tables; empty when there is no file."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        found = plain_toml(text)
        if found is not None:
            return found
        import tomllib

        return tomllib.loads(text)
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError, bad UTF-8
        raise ConfigError(f"cannot read config {path}: {exc}") from None


_PLAIN_LINE = (
    r"[ \t]*(?:"
    r"\[[ \t]*(?P<table>[A-Za-z0-9_-]+)[ \t]*\]"
    r"|(?P<key>[A-Za-z0-9_-]+)[ \t]*=[ \t]*(?:"
    r'"(?P<text>[^"\\\x00-\x1f\x7f]*)"'
    r"|(?P<float>-?(?:0|[1-9][0-9]*)\.[0-9]+)"
    r"|(?P<int>-?(?:0|[1-9][0-9]*))"
    r"|(?P<bool>true|false)"
    r"))?[ \t]*(?:#[^\x00-\x08\x0a-\x1f\x7f]*)?"
)


def plain_toml(text: str) -> dict[str, Any] | None:
    """``text`` read as ``tomllib`` reads it, when every line is blank, a comment, a plain
    ``[table]`` header or ``key = value`` with a string without escapes, a decimal
    integer or float, or a boolean (all a written configuration holds); None for
    anything else, which ``tomllib`` then reads. Importing ``tomllib`` costs more than
    a quick CLI command spends on its request."""
    import re

    line_rule = re.compile(_PLAIN_LINE)
    tables: dict[str, Any] = {}
    current = tables
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i < len(lines) - 1:
            line = line.removesuffix("\r")  # CRLF ends a line; a lone CR is refused
        found = line_rule.fullmatch(line)
        if found is None:
            return None
        table, key = found.group("table"), found.group("key")
        if table is not None:
            if table in tables:
                return None
            current = tables[table] = {}
        elif key is not None:
            if key in current:
                return None
            value: Any
            if found.group("text") is not None:
                value = found.group("text")
            elif found.group("float") is not None:
                value = float(found.group("float"))
            elif found.group("int") is not None:
                value = int(found.group("int"))
            else:
                value = found.group("bool") == "true"
            current[key] = value
    return tables


def section_values(
    section: str, fields: Iterable[str], path: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """``[section]`` of the file at ``path`` (default :func:`config_path`), with each
    of ``fields`` set in the environment as ``KAWA_<SECTION>_<FIELD>`` (a string)
    taking its place. Unchecked: keys the section should not have are kept."""
    table = read_toml(config_path() if path is None else path).get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"invalid [{section}] configuration: not a table")
    data = dict(table)
    prefix = f"KAWA_{section.upper()}_"
    for field in fields:
        value = os.environ.get(prefix + field.upper())
        if value is not None:
            data[field] = value
    return data
