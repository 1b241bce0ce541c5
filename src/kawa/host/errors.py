"""Service-level errors, mapped to HTTP statuses by the app."""

from __future__ import annotations

from typing import Any

from kawa.protocol.common import ErrorResponse


class ServiceError(Exception):
    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def headers(self) -> dict[str, str]:
        """Headers the error's HTTP answer carries."""
        return {}


class BadRequest(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class TooBusy(ServiceError):
    """Too much of this work in flight; the same call may be sent again later."""

    status = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Unavailable(ServiceError):
    status = 503


_MEANINGS = {
    400: "Bad request: a value the host cannot use (the detail says which)",
    401: "No or unknown credentials",
    403: "The caller's role may not do this",
    404: "No such task, node, environment or path",
    409: "The thing's state does not allow this now",
    413: "The request body is larger than its limit",
    422: "The body or a parameter breaks its schema; `errors` lists each problem",
    429: "Too many such calls in flight: send it again after `Retry-After` seconds",
    503: "A part the host needs (a runner, Docker) cannot be reached",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting these error statuses with :class:`ErrorResponse`."""
    return {
        status: {"model": ErrorResponse, "description": _MEANINGS[status]} for status in statuses
    }
