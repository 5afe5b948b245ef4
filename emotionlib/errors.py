"""The one error type the API turns into a 4xx JSON response."""
from __future__ import annotations


class InputError(ValueError):
    """A problem with what the client sent. ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_dict(self) -> dict:
        """The JSON error body every 4xx answer of the API uses."""
        return {"error": self.message, "code": self.code, "status": self.status}
