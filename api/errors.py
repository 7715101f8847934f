"""The one error type the scoring service turns into an HTTP answer.

Everything below the web layer raises :class:`ApiError` (or one of the product's
:class:`~tasks.core.errors.UpliftError` subclasses); the app maps it to a status code and a JSON
body ``{"error": ..., "message": ..., "field": ...}`` so the client sees which field or key
is at fault and the server keeps running.
"""
from __future__ import annotations

from tasks.core.errors import UpliftError


class ApiError(UpliftError):
    """A request the service cannot answer, with the HTTP status and the field at fault."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        super().__init__(message)

    def body(self) -> dict:
        """JSON body of the error response."""
        return {"error": self.code, "message": self.message, "field": self.field}
