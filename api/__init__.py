"""Online scoring service: a REST API over the champion model, with every prediction logged.

``create_app(settings)`` builds the FastAPI application; ``python -m api`` serves it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily so that `import api` stays cheap
    from api.app import create_app
    from api.service import ApiSettings

__all__ = ["create_app", "ApiSettings"]


def __getattr__(name: str):
    if name == "create_app":
        from api.app import create_app
        return create_app
    if name == "ApiSettings":
        from api.service import ApiSettings
        return ApiSettings
    raise AttributeError(name)
