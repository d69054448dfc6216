"""Liveness routes: GET / (the process answers) and GET /db-check (the database answers)."""

from __future__ import annotations

from litestar import get

from apiclub.api.schemas import DbCheck, Status
from apiclub.db import tasks


@get("/", summary="Is the API up?")
async def read_status() -> Status:
    """Answer without touching the database, for load balancers and health checks."""
    return Status(status="ok")


@get("/db-check", summary="Does the database answer?")
async def check_database() -> DbCheck:
    """Run `SELECT 1` on the database: a real round trip."""
    return DbCheck(results=await tasks.ping())
