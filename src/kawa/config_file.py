"""Where Kawa's configuration file is and what one section of it says: the file's
values, then ``KAWA_<SECTION>_<KEY>`` environment variables over them.

Standard library only (no pathlib, no pydantic) so that the quick CLI path reads the
client configuration as cheaply as it can; :mod:`kawa.settings` validates the same
values into its models.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
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
    import tomllib

    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            return tomllib.loads(f.read())
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError, bad UTF-8
        raise ConfigError(f"cannot read config {path}: {exc}") from None


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
