"""Pydantic request and response bodies, the shapes of the API contract."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_serializer


class TaskIn(BaseModel):
    """The body of POST and PUT."""

    name: str = Field(min_length=1, max_length=200)


class TaskOut(BaseModel):
    """A stored task."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    created_at: datetime

    @field_serializer("created_at")
    def _utc(self, value: datetime) -> str:
        # SQLite hands back naive datetimes: they were stored in UTC.
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="microseconds")


class TaskPage(BaseModel):
    """One page of tasks and the count of all that match."""

    tasks: list[TaskOut]
    total: int
    page: int
    page_size: int
