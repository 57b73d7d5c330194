"""Request and response bodies. extra="forbid": a misspelled field is a 422, not a silently default."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

ItemId = StrictStr | StrictInt  # raw item ids as in the training data; numbers are read as their text


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(Body):
    history: list[ItemId] = Field(description="raw item ids, oldest first")
    times: list[float] | None = Field(default=None, description="one timestamp (s) per history item")
    k: int = Field(default=10, ge=1)
    exclude_history: bool = True
    exclude: list[ItemId] = Field(default_factory=list, description="raw ids never to recommend")


class BatchRecommendRequest(Body):
    requests: list[RecommendRequest] = Field(min_length=1, max_length=1024)


class Event(Body):
    item: ItemId
    time: float | None = None


class EventsRequest(Body):
    events: list[Event] = Field(min_length=1, max_length=1000)


class ReloadRequest(Body):
    path: str | None = Field(default=None, description="export folder; default: the one being served")


class ScoredItem(Body):
    id: str
    score: float


class ModelRef(Body):
    name: str
    fingerprint: str  # first 16 hex of the export's manifest sha256: names the exact folder served


class RecommendResponse(Body):
    items: list[ScoredItem]
    unknown_items: list[str]
    model: ModelRef
    fallback: Literal["popularity"] | None = None
    history_used: int = Field(description="history items the model saw (known, within its max_len)")


class BatchRecommendResponse(Body):
    results: list[RecommendResponse]


class EventsResponse(Body):
    user: str
    stored: int = Field(description="events now kept for this user (bounded)")
    unknown_items: list[str]


class UserRecommendResponse(RecommendResponse):
    user: str
    user_known: bool
