"""The web layer: :func:`create_app` builds the FastAPI application for given settings.

Endpoints: ``POST /predict``, ``GET /health``, ``GET /model``; the OpenAPI schema is at
``/openapi.json`` and the interactive docs at ``/docs`` (Swagger UI) and ``/redoc``, served
from the files of the installed ``fastapi-offline`` package, so they work without a network.
Every error answer is JSON ``{"error", "message", "field"}``; nothing a client sends can make
the server fail. With tokens configured, every request but ``GET /health`` and the docs
needs ``Authorization: Bearer <token>`` (:mod:`api.auth`).
"""
from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import fastapi_offline
import orjson
from fastapi import FastAPI, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import SCOPE_CALLER, BearerAuth, TokenChecker
from api.errors import ApiError
from api.features import FeatureSchema
from api.schemas import ErrorResponse, PredictRequest, PredictResponse
from api.service import ApiSettings, PredictionService, new_request_id
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError, StateError, UpliftError

log = logging.getLogger("uplift.api")

# Swagger UI and ReDoc bundles shipped inside the fastapi-offline package (no CDN).
DOCS_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/docs-assets"
OPEN_PATHS = ("/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)

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
    props: dict[str, dict] = {"client_id": {"type": "integer"}}
    for f in features.features:
        props[f] = dict(_JSON_TYPES[features.kinds[f]])
        if f in features.bounds and features.kinds[f] in ("float", "int"):
            props[f]["minimum"], props[f]["maximum"] = features.bounds[f]
    row["properties"] = props
    row["required"] = list(features.features)
    row["additionalProperties"] = False


def _describe_security(schema: dict) -> None:
    """Declare the bearer token in the OpenAPI schema (Swagger UI's "Authorize" button)."""
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
        "type": "http", "scheme": "bearer", "description": "A token of UPLIFT_API_TOKENS or the tokens file."}
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            if not (method == "get" and path in OPEN_PATHS):
                op["security"] = [{"bearer": []}]
                op.setdefault("responses", {})["401"] = {
                    "description": "No token or a wrong one.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object",
            type(None): "null"}.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    """A short description of a wrong JSON value: its type, and the value itself when scalar."""
    kind = _json_type(value)
    if value is None:
        return kind
    if isinstance(value, str):
        return f"{kind} {json.dumps(value[:40])}" + ("..." if len(value) > 40 else "")
    if isinstance(value, (bool, int, float)):
        text = json.dumps(value) if not isinstance(value, int) or abs(value) < 10**30 else "(a huge number)"
        return f"{kind} {text}"
    return kind


def _body_error(exc: StarletteHTTPException) -> tuple[str, str]:
    """(code, message) for a body FastAPI could not parse, from the underlying exception."""
    cause = exc.__cause__
    if isinstance(cause, RecursionError):
        return "invalid_json", "body: JSON nested too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return "invalid_json", (f"body: not valid UTF-8 (byte 0x{cause.object[cause.start]:02x} at position "
                                f"{cause.start}); send JSON encoded as UTF-8")
    return "invalid_json", f"body: could not be parsed as JSON ({type(cause).__name__ if cause else exc.detail})"


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
                    "under a campaign's threshold policy. Every prediction is logged."
                    + (" Send `Authorization: Bearer <token>` (button \"Authorize\")." if settings.tokens else ""),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.state.settings = settings
    auth_stats: dict[str, int] = {"refused": 0}
    app.state.auth_stats = auth_stats
    checker = TokenChecker(settings.tokens) if settings.tokens else None
    app.add_middleware(BearerAuth, checker=checker, open_paths=OPEN_PATHS, open_prefixes=(ASSETS_URL + "/",),
                       access_log=settings.access_log, stats=auth_stats)
    app.mount(ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

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
            if settings.tokens:
                _describe_security(schema)
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
        if str(first.get("type", "")).endswith("_type") and "input" in first:
            message += f"; got {_shown(first['input'])}"
        if first.get("type") == "json_invalid":
            return _json(422, {"error": "invalid_json", "message": f"body: not valid JSON ({first.get('ctx', {}).get('error', 'syntax error')})",
                               "field": "body"})
        if first.get("type") == "extra_forbidden":
            message = f"{where}: unknown field {str(first.get('loc', ['?'])[-1])!r}; allowed: campaign, clients, client_ids"
        details = jsonable_encoder([{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors[:20]])
        return _json(422, {"error": "validation_error", "message": message, "field": where, "details": details})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI could not read the body (deep nesting, bad UTF-8, ...)
            code, message = _body_error(exc)
            return _json(422, {"error": code, "message": message, "field": "body"})
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = {404: f"{request.url.path}: no such endpoint; see /docs",
                   405: f"{request.method} {request.url.path}: method not allowed"}.get(exc.status_code, str(exc.detail))
        return _json(exc.status_code, {"error": codes.get(exc.status_code, "http_error"), "message": message,
                                       "field": None}, headers=getattr(exc, "headers", None))

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
    async def health(request: Request) -> Response:
        """Serving state: model version, refused reloads, factor snapshot, prediction log counters.

        Open to all; with tokens configured a caller without a valid token sees the status only."""
        detailed = not settings.tokens or request.scope.get(SCOPE_CALLER) is not None
        status, body = service.health(detailed)
        if detailed and body.get("authentication") is not None:
            body["authentication"]["refused_requests"] = auth_stats["refused"]
        return _json(status, body)

    @app.get("/model", responses={503: {"model": ErrorResponse, "description": "No model loaded."}})
    async def model() -> Response:
        """Champion metadata: name, version, kind, features and dtypes, metrics."""
        return _json(200, service.model_info())

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False})

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{ASSETS_URL}/favicon.png", with_google_fonts=False)

    return app
