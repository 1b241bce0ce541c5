"""Small models used across the API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kawa.protocol.urls import API_PREFIX as API_PREFIX


class WireModel(BaseModel):
    """Base of every wire model: unknown fields are refused, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ErrorItem(WireModel):
    """One problem with a request: where (``loc``, e.g. ``["body", "env", "A"]``) and what."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(WireModel):
    """Every error the API answers (4xx and 5xx): ``detail`` says what is wrong in one
    readable line; a refused request body or parameter (422) also lists each problem
    in ``errors``."""

    detail: str
    errors: list[ErrorItem] | None = None


AUTH_HEADER = "Authorization"
