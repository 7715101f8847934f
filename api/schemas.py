"""Request and response bodies of the scoring service (they make up the OpenAPI schema).

Factor values are checked against the champion's feature schema by :mod:`api.features`
rather than here, because the features change when a new champion is promoted; the
schema below only fixes the shape of a request.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, WithJsonSchema

ClientRow = Annotated[
    dict[str, Any],
    WithJsonSchema({
        "type": "object",
        "description": "One client: optional integer client_id plus one value per champion feature "
                       "(see GET /model for names and dtypes). Unknown keys are rejected.",
        "properties": {"client_id": {"type": "integer"}},
        "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "string"}]},
    }),
]
# Strict: JSON true or "101" is refused where a client id is expected, not read as 1 or 101.
ClientId = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]


class PredictRequest(BaseModel):
    """Score clients given their factor values (``clients``) or by id (``client_ids``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"campaign": "spring_sale", "client_ids": [101, 102]},
        {"clients": [{"client_id": 7, "recency_days": 12, "purchases_90d": 3}]},
    ]})

    campaign: str | None = Field(
        None, max_length=128,
        description="Campaign whose threshold policy decides the offer (conf/campaign/<name>.yaml or a "
                    "calculated campaign id); may also be given as the query parameter ?campaign=.")
    clients: list[ClientRow] | None = Field(None, description="Factor values of each client.")
    client_ids: list[ClientId] | None = Field(
        None, description="Client ids (JSON integers), looked up in the factor checkpoints of the frozen "
                          "campaigns of the served model: each client's factors from the newest campaign holding it.")


class Prediction(BaseModel):
    """The answer for one client, in request order."""

    client_id: int | None
    score: float = Field(description="Predicted uplift (uplift model) or response probability.")
    offer: bool | None = Field(description="Offer decision under the campaign's policy; null without a campaign.")


class ModelRef(BaseModel):
    """Which model answered."""

    name: str
    version: str
    kind: str


class CampaignInfo(BaseModel):
    """The policy that made the offer decisions."""

    name: str
    campaign_id: str
    policy: str
    score_cutoff: float | None
    threshold_source: str = Field(description="'manifest' (frozen campaign) or 'config'.")
    frozen_at: str | None
    campaign_model_version: str | None


class PredictResponse(BaseModel):
    """Scores and decisions for every client of the request."""

    request_id: str
    model: ModelRef
    campaign: CampaignInfo | None
    predictions: list[Prediction]


class ErrorResponse(BaseModel):
    """Every error answer: a code, a message naming the field or key, and the field."""

    error: str
    message: str
    field: str | None = None
    details: list[dict] | None = None
