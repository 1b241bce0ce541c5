"""Small models used across the API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """Base of every wire model: unknown fields are refused, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(WireModel):
    detail: str


API_PREFIX = "/api/v1"
AUTH_HEADER = "Authorization"
