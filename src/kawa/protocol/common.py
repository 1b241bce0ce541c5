"""Small models used across the API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kawa.protocol.urls import API_PREFIX as API_PREFIX


class WireModel(BaseModel):
    """Base of every wire model: unknown fields are refused, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(WireModel):
    detail: str



AUTH_HEADER = "Authorization"
