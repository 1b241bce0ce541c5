"""OpenAPI descriptions of answers that are not JSON (streams, tarballs, NDJSON)."""

from __future__ import annotations

from typing import Any


def streamed(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a 200 answer of ``media_type`` (no JSON schema)."""
    return {200: {"description": description, "content": {media_type: {}}}}


NDJSON = streamed("application/x-ndjson", "One JSON object a line; the last says how it ended")
TARBALL = streamed("application/x-tar", "The tarball (Range requests resume it)")
BYTES = streamed("application/octet-stream", "The bytes, streamed")
