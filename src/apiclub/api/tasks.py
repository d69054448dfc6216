"""The task routes: list, create, read, update, delete.

The largest task id is the engine's (`interface.Engine.max_task_id`: SQLite's 64-bit rowid,
PostgreSQL's 32-bit `serial`), so `task_controller` builds the routes for the engine the
settings name: a larger id in a path names no task (404), a larger cursor is refused (400), and
the OpenAPI document states the engine's maximum.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, delete, get, post, put
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody, Parameter

from apiclub.api.schemas import MAX_PAGE, MAX_PAGE_SIZE, TaskIn, TaskOut, TaskPage
from apiclub.db import tasks
from apiclub.db.tables import NAME_MAX_LENGTH

TaskId = Annotated[int, Parameter(description="The task's id.")]
AfterId = Annotated[int | None, "the cursor; its Parameter, with the engine's bound: _after_id"]


def _after_id(max_task_id: int) -> Any:
    """The `after_id` query parameter, at most `max_task_id` (the engine's largest id)."""
    return Annotated[
        int | None,
        Parameter(
            ge=0,
            le=max_task_id,
            # Litestar 2.25 drops a falsy bound from the OpenAPI schema (`if value and ...` in
            # `_apply_kwarg_definition_metadata`): state `ge=0` there again.
            schema_extra={"minimum": 0},
            description=(
                "A cursor: only tasks with an id above this one, in id order. To walk the whole "
                "list, pass the id of the last task of the previous page (start without it, or "
                "with 0) and leave `page` at 1: each page then costs the same however deep it "
                "is, where `page=N` reads and skips (N - 1) x page_size tasks first (with a "
                "cursor, `page` counts pages after it). `total` still counts every task "
                "matching `name`."
            ),
        ),
    ]


class TaskController(Controller):
    """Tasks at /task; `/task` and `/task/` both work (Litestar ignores a trailing slash)."""

    path = "/task"
    tags = ("tasks",)
    max_task_id = 0
    """The engine's largest task id; `task_controller` sets it (no id is valid in the base)."""

    @get("/", summary="List tasks")
    async def list_tasks(
        self,
        page: Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="1-based page.")] = 1,
        page_size: Annotated[
            int, Parameter(ge=1, le=MAX_PAGE_SIZE, description="Tasks per page.")
        ] = 10,
        name: Annotated[
            str | None,
            Parameter(
                max_length=NAME_MAX_LENGTH,
                description=(
                    "Only tasks whose name contains this text (ASCII letters in any case; "
                    "`%` and `_` match themselves). 3 characters or more use an index; 1 or 2 "
                    "characters scan every task."
                ),
            ),
        ] = None,
        after_id: AfterId = None,
    ) -> TaskPage:
        """One page of tasks in id order (after `after_id`); `total` counts all matching `name`."""
        rows, total = await tasks.list_tasks(
            name=name, limit=page_size, offset=(page - 1) * page_size, after_id=after_id or 0
        )
        return TaskPage(
            tasks=[TaskOut.from_row(row) for row in rows],
            total=total,
            page=page,
            page_size=page_size,
        )

    @post("/", summary="Create a task")
    async def create_task(self, data: JSONBody[TaskIn]) -> TaskOut:
        """Store a new task; answers 201 and the task as stored."""
        return TaskOut.from_row(await tasks.create_task(data.name))

    @get("/{task_id:int}", summary="Read a task", raises=[NotFoundException])
    async def read_task(self, task_id: TaskId) -> TaskOut:
        """The task with this id, or 404."""
        row = await tasks.get_task(task_id) if self._valid(task_id) else None
        return _found(row, task_id)

    @put("/{task_id:int}", summary="Rename a task", raises=[NotFoundException])
    async def update_task(self, task_id: TaskId, data: JSONBody[TaskIn]) -> TaskOut:
        """Replace the task's name; answers the updated task, or 404."""
        row = await tasks.update_task(task_id, data.name) if self._valid(task_id) else None
        return _found(row, task_id)

    @delete("/{task_id:int}", summary="Delete a task", status_code=200, raises=[NotFoundException])
    async def delete_task(self, task_id: TaskId) -> TaskOut:
        """Delete the task; answers it as it was, or 404."""
        row = await tasks.delete_task(task_id) if self._valid(task_id) else None
        return _found(row, task_id)

    def _valid(self, task_id: int) -> bool:
        # A larger id names no task, and would fail as the engine's query parameter.
        return 1 <= task_id <= self.max_task_id


def task_controller(max_task_id: int) -> type[Controller]:
    """The task routes for an engine whose largest task id is `max_task_id`."""

    # Resolves the `AfterId` annotation of `list_tasks` (Litestar's forward references).
    namespace = {"AfterId": _after_id(max_task_id)}
    return type(
        "TaskController",
        (TaskController,),
        {"signature_namespace": namespace, "max_task_id": max_task_id},
    )


def _found(row: tasks.TaskRow | None, task_id: int) -> TaskOut:
    if row is None:
        raise NotFoundException(detail="Task not found", extra={"id": task_id})
    return TaskOut.from_row(row)
