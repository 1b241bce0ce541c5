"""Names and ids as parts of API URLs, checked before any request is sent.

An empty id would make ``/tasks/`` (which the host answers with a redirect, not an
error) and a ``/`` inside one would reach another route, so the clients refuse both
here. Imports nothing heavy: the CLI's quick paths use it too.
"""

from __future__ import annotations

from urllib.parse import quote

from kawa.client.errors import KawaError


def path_segment(value: str, what: str) -> str:
    """``value`` percent-encoded as one URL path segment; :class:`KawaError` naming
    ``what`` ("task id", "node name", …) when it cannot be one: empty or blank, ``.``
    or ``..``, or holding ``/`` or a control character."""
    if not value.strip():
        raise KawaError(f"{what} is empty")
    if value in (".", "..") or "/" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise KawaError(f"bad {what} {value!r}")
    return quote(value, safe="")


def task_ref(value: str) -> str:
    """A task id or unique id prefix as the host reads it (decimal digits, surrounding
    blanks ignored); :class:`KawaError` with the host's wording otherwise."""
    ref = value.strip()
    if not ref:
        raise KawaError("task id is empty")
    if not (ref.isascii() and ref.isdigit()):
        raise KawaError(f"bad task id {value!r}: task ids are decimal digits")
    return ref
