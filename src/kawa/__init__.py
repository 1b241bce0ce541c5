"""Kawa: a self-hosted cluster manager for small clusters."""

__version__ = "0.1.0"
