"""Typed HTTP + WebSocket clients for the host API (sync and async).

``KawaClient`` and ``KawaError`` are loaded on first use, so importing a submodule
(``kawa.client.streams``) does not import the sync client and every API model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kawa.client.errors import KawaError
    from kawa.client.sync_client import KawaClient

__all__ = ["KawaClient", "KawaError"]


def __getattr__(name: str) -> Any:
    if name == "KawaClient":
        from kawa.client.sync_client import KawaClient

        return KawaClient
    if name == "KawaError":
        from kawa.client.errors import KawaError

        return KawaError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
