"""The engine and session factory, from DB_FILE_PATH as in the tutorial."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

DB_FILE_PATH = os.environ.get("DB_FILE_PATH", "data/api.db")

engine = create_async_engine(f"sqlite+aiosqlite:///{DB_FILE_PATH}")
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    """The tutorial's declarative base."""


async def get_db() -> AsyncIterator[AsyncSession]:
    """One session per request (FastAPI dependency)."""
    async with SessionLocal() as session:
        yield session
