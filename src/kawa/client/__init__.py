"""Typed HTTP + WebSocket clients for the host API (sync and async)."""

from kawa.client.errors import KawaError
from kawa.client.sync_client import KawaClient

__all__ = ["KawaClient", "KawaError"]
