"""The routes: the tutorial's app.main, with the list's paging and filter of the contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bench.tutorial.database import Base, engine, get_db
from bench.tutorial.models import Task
from bench.tutorial.schemas import TaskIn, TaskOut, TaskPage

Db = Annotated[AsyncSession, Depends(get_db)]


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # The tutorial runs `alembic upgrade head` before uvicorn; create_all stands in for it.
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def read_root() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/db-check")
async def db_check(db: Db) -> dict[str, list[int]]:
    result = await db.execute(text("SELECT 1"))
    return {"results": list(result.scalars())}


@app.get("/task/")
async def list_tasks(
    db: Db,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 10,
    name: str | None = None,
) -> TaskPage:
    query = select(Task)
    count = select(func.count()).select_from(Task)
    if name:
        query = query.where(Task.name.contains(name, autoescape=True))
        count = count.where(Task.name.contains(name, autoescape=True))
    rows = await db.scalars(query.order_by(Task.id).limit(page_size).offset((page - 1) * page_size))
    total = await db.scalar(count) or 0
    tasks = [TaskOut.model_validate(row) for row in rows]
    return TaskPage(tasks=tasks, total=total, page=page, page_size=page_size)


@app.post("/task/", status_code=201)
async def create_task(body: TaskIn, db: Db) -> TaskOut:
    task = Task(name=body.name)
    db.add(task)
    await db.commit()
    await db.refresh(task)
    return TaskOut.model_validate(task)


@app.get("/task/{task_id}")
async def read_task(task_id: int, db: Db) -> TaskOut:
    return TaskOut.model_validate(await _found(db, task_id))


@app.put("/task/{task_id}")
async def update_task(task_id: int, body: TaskIn, db: Db) -> TaskOut:
    task = await _found(db, task_id)
    task.name = body.name
    await db.commit()
    await db.refresh(task)
    return TaskOut.model_validate(task)


@app.delete("/task/{task_id}")
async def delete_task(task_id: int, db: Db) -> TaskOut:
    task = await _found(db, task_id)
    out = TaskOut.model_validate(task)
    await db.delete(task)
    await db.commit()
    return out


async def _found(db: AsyncSession, task_id: int) -> Task:
    task = await db.get(Task, task_id)
    if task is None:
        raise HTTPException(status_code=404, detail="Task not found")
    return task
