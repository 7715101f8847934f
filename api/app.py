"""The web layer: :func:`create_app` builds the FastAPI application for given settings.

Endpoints: ``POST /predict``, ``GET /health``, ``GET /model``; the OpenAPI schema is at
``/openapi.json`` and the interactive docs at ``/docs``. Every error answer is JSON
``{"error", "message", "field"}``; nothing a client sends can make the server fail.
"""
from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from api.errors import ApiError
from api.features import FeatureSchema
from api.schemas import ErrorResponse, PredictRequest, PredictResponse
from api.service import ApiSettings, PredictionService, new_request_id
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError, StateError, UpliftError

log = logging.getLogger("uplift.api")

try:  # orjson ships with Prefect; plain json is the fallback
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
except ImportError:  # pragma: no cover
    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, allow_nan=False, default=str).encode()

_ERRORS = {422: {"model": ErrorResponse, "description": "Invalid input; the message names the field."}}
_STATUS = {DataValidationError: 422, NotFoundError: 404, StateError: 409, ConfigError: 500}


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(body), status_code=status, media_type="application/json", headers=headers)


def _field(loc: tuple | list) -> str:
    """('body', 'clients', 0, 'x') -> 'clients[0].x'."""
    out = ""
    for part in loc:
        if part in ("body",) and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


_JSON_TYPES = {"float": {"type": "number"}, "int": {"type": "integer"}, "bool": {"type": "boolean"},
               "category": {"type": "string"}}


def _describe_features(schema: dict, features: FeatureSchema) -> None:
    """Put the champion's feature names and JSON types into the ``clients`` row schema."""
    try:
        clients = schema["components"]["schemas"]["PredictRequest"]["properties"]["clients"]
        row = next(a["items"] for a in clients["anyOf"] if a.get("type") == "array")
    except (KeyError, StopIteration):
        return
    row["properties"] = {"client_id": {"type": "integer"},
                         **{f: dict(_JSON_TYPES[features.kinds[f]]) for f in features.features}}
    row["required"] = list(features.features)
    row["additionalProperties"] = False


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the scoring application; the champion is loaded when the app starts."""
    settings = settings or ApiSettings()
    service = PredictionService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="Uplift scoring service",
        version="1.0",
        description="Scores clients with the champion uplift or response model and decides the offer "
                    "under a campaign's threshold policy. Every prediction is logged.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings

    base_openapi = app.openapi

    def openapi() -> dict:
        """The OpenAPI schema, with the current champion's features spelled out in ``clients``."""
        served = service.watcher.current
        version = served.version if served is not None else None
        if app.openapi_schema is None or app.state.openapi_version != version:
            app.openapi_schema = None
            schema = base_openapi()
            if served is not None:
                _describe_features(schema, served.scorer.schema)
            app.openapi_schema, app.state.openapi_version = schema, version
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.openapi_version = None

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return _json(exc.status, exc.body())

    @app.exception_handler(UpliftError)
    async def _uplift_error(request: Request, exc: UpliftError) -> Response:
        status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 422)
        return _json(status, {"error": type(exc).__name__, "message": str(exc),
                              "field": getattr(exc, "column", None)})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = _field(first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}"
        if first.get("type") == "extra_forbidden":
            message = f"{where}: unknown field {str(first.get('loc', ['?'])[-1])!r}; allowed: campaign, clients, client_ids"
        details = jsonable_encoder([{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors[:20]])
        return _json(422, {"error": "validation_error", "message": message, "field": where, "details": details})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return _json(500, {"error": "internal_error", "message": f"{type(exc).__name__}: {exc}"[:500], "field": None})

    @app.post("/predict", response_model=PredictResponse,
              responses={**_ERRORS, 404: {"model": ErrorResponse, "description": "Unknown client or campaign."},
                         409: {"model": ErrorResponse, "description": "Campaign threshold unknown or no snapshot."},
                         413: {"model": ErrorResponse, "description": "Batch larger than the limit."},
                         503: {"model": ErrorResponse, "description": "No model loaded."}})
    async def predict(
        body: PredictRequest,
        campaign: str | None = Query(None, max_length=128, description="Campaign whose policy decides the offer."),
        x_request_id: str | None = Header(None, description="Optional id for tracing; echoed back."),
    ) -> Response:
        """Score one client or a batch (factor values or client ids) and decide the offer."""
        request_id = new_request_id(x_request_id)
        result = service.predict(body, campaign, request_id)
        return _json(200, result, headers={"X-Request-ID": request_id})

    @app.get("/health", responses={503: {"description": "No model loaded."}})
    async def health() -> Response:
        """Serving state: model version, refused reloads, factor snapshot, prediction log counters."""
        status, body = service.health()
        return _json(status, body)

    @app.get("/model", responses={503: {"model": ErrorResponse, "description": "No model loaded."}})
    async def model() -> Response:
        """Champion metadata: name, version, kind, features and dtypes, metrics."""
        return _json(200, service.model_info())

    return app
