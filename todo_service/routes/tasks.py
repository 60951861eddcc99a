"""Tasks: /api/{user_id}/tasks/... (API.md, Tasks).

Views return ready-made JSON responses (orjson on plain mappings); the
`@blp.response` schemas document exactly those representations.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_jwt_extended import jwt_required

from ..schemas import (
    CompleteIn,
    TagCountOut,
    TaskCreate,
    TaskListArgs,
    TaskOut,
    TaskPatch,
    TaskReplace,
)
from ..security import checked_in_statement, defer_token_check, resolve_owner
from ..services import tags, tasks
from ..services.task_fields import task_payload
from . import conditional, idempotency
from .common import BEARER, ApiBlueprint, json_response, load_optional_body
from .conditional import (
    ETAG_HEADER_DOC,
    LIST_ETAG_HEADER_DOC,
    NOT_MODIFIED_DOC,
    takes_if_match,
    takes_if_none_match,
    task_etag,
)
from .pagination import PAGINATION_HEADERS_DOC, pagination_headers

blp = ApiBlueprint("tasks", __name__, url_prefix="/api", description="Your tasks.")

_LOCATION_DOC = {
    "Location": {
        "description": "URL of the new task.",
        "required": True,
        "schema": {"type": "string"},
    }
}


class _TaskView(MethodView):
    """Every task view: a valid bearer token, whose revocation check rides in
    the view's own statement (`checked_in_statement`: applied last, so it
    runs before `jwt_required` and the token's check is left to the view)."""

    decorators = [jwt_required(), checked_in_statement]


def _task_url(owner_id: uuid.UUID, task_id: uuid.UUID) -> str:
    return f"/api/{owner_id}/tasks/{task_id}"


@blp.route("/<user_ref:user_id>/tasks")
class TaskCollection(_TaskView):
    @takes_if_none_match
    @blp.arguments(TaskListArgs(), location="query")
    @blp.response(
        200, TaskOut(many=True), headers={**PAGINATION_HEADERS_DOC, **LIST_ETAG_HEADER_DOC}
    )
    @blp.alt_response(304, headers=LIST_ETAG_HEADER_DOC, **NOT_MODIFIED_DOC)
    @blp.errors(401, 403, 404, 503)
    @blp.doc(operationId="listTasks", security=BEARER)
    def get(self, args: dict[str, Any], user_id: uuid.UUID | str) -> Any:
        """List your tasks, one page

        Filters combine with AND. Paging metadata is in the `X-Pagination`
        header (JSON) and in the `Link` header. Poll with the `ETag` in
        `If-None-Match`: a 304 while none of your tasks has changed.
        """
        owner = resolve_owner(user_id)
        query = _list_query(args)
        token = defer_token_check()
        before = None
        if conditional.has_if_none_match():  # a revalidation: the page only if it changed
            before = tasks.list_version(owner_id=owner, query=query, token=token)
            etag = conditional.list_etag(owner, before.version)
            if conditional.none_match(etag):
                return conditional.not_modified(etag)
        payloads, total, version = tasks.list_tasks(
            owner_id=owner, query=query, token=token, before=before
        )
        headers = pagination_headers(
            total=total, page=query.page, page_size=query.page_size, args=request.args
        )
        headers["ETag"] = conditional.list_etag(owner, version)
        return json_response(payloads, headers=headers)

    @idempotency.checks_idempotency_key  # before the body (API.md, Details 1.1)
    @blp.arguments(TaskCreate())
    @blp.response(
        201,
        TaskOut,
        headers={**_LOCATION_DOC, **ETAG_HEADER_DOC, **idempotency.REPLAYED_HEADER_DOC},
    )
    @blp.errors(400, 401, 403, 404, 409, 503)
    @blp.doc(operationId="createTask", security=BEARER, parameters=[idempotency.KEY_PARAMETER])
    def post(
        self, data: dict[str, Any], user_id: uuid.UUID | str, idempotency_key: str | None = None
    ) -> Any:
        """Create a task

        Send `completed` or `status` (or both, agreeing). With an
        `Idempotency-Key`, a retry is safe: see the header.
        """
        owner = resolve_owner(user_id)
        if idempotency_key is not None:
            return idempotency.create_task_once(
                owner_id=owner,
                key=idempotency_key,
                fields=data,
                location_of=lambda task_id: _task_url(owner, task_id),
            )
        task = tasks.create_task(owner_id=owner, fields=data, token=defer_token_check())
        headers = {"Location": _task_url(owner, task["id"]), "ETag": task_etag(task)}
        return json_response(task_payload(task), 201, headers)


def _list_query(args: dict[str, Any]) -> tasks.ListQuery:
    return tasks.ListQuery(
        completed=None if "completed" not in args else args["completed"] == "true",
        status=args.get("status"),
        q=args.get("q") or None,
        priority=args.get("priority"),
        tags=tuple(args.get("tag", ())),
        due_before=args.get("due_before"),
        due_after=args.get("due_after"),
        overdue=None if "overdue" not in args else args["overdue"] == "true",
        sort=args["sort"],
        page=args["page"],
        page_size=args["page_size"],
    )


@blp.route("/<user_ref:user_id>/tasks/<uuid:task_id>")
class TaskItem(_TaskView):
    @takes_if_none_match
    @blp.response(200, TaskOut, headers=ETAG_HEADER_DOC)
    @blp.alt_response(304, headers=ETAG_HEADER_DOC, **NOT_MODIFIED_DOC)
    @blp.errors(401, 403, 404, 503)
    @blp.doc(operationId="getTask", security=BEARER)
    def get(self, user_id: uuid.UUID | str, task_id: uuid.UUID) -> Any:
        """Get one task"""
        owner = resolve_owner(user_id)
        task = tasks.get_task(owner_id=owner, task_id=task_id, token=defer_token_check())
        etag = task_etag(task)
        if conditional.none_match(etag):
            return conditional.not_modified(etag)
        return json_response(task_payload(task), headers={"ETag": etag})

    @takes_if_match
    @blp.arguments(TaskReplace())
    @blp.response(200, TaskOut, headers=ETAG_HEADER_DOC)
    @blp.errors(400, 401, 403, 404, 412, 503)
    @blp.doc(operationId="replaceTask", security=BEARER)
    def put(self, data: dict[str, Any], user_id: uuid.UUID | str, task_id: uuid.UUID) -> Any:
        """Replace a task

        A field left out takes its default (`description` null, not
        completed, priority `medium`, no due date, no tags).
        """
        return _update(data, user_id, task_id)

    @takes_if_match
    @blp.arguments(TaskPatch(), required=False)  # no body: nothing changes
    @blp.response(200, TaskOut, headers=ETAG_HEADER_DOC)
    @blp.errors(400, 401, 403, 404, 412, 503)
    @blp.doc(operationId="updateTask", security=BEARER)
    def patch(self, data: dict[str, Any], user_id: uuid.UUID | str, task_id: uuid.UUID) -> Any:
        """Change some fields of a task

        `tags` replaces the whole list.
        """
        return _update(data, user_id, task_id)

    @takes_if_match
    @blp.response(204)
    @blp.errors(401, 403, 404, 412, 503)
    @blp.doc(operationId="deleteTask", security=BEARER)
    def delete(self, user_id: uuid.UUID | str, task_id: uuid.UUID) -> Any:
        """Delete a task"""
        owner = resolve_owner(user_id)
        tasks.delete_task(
            owner_id=owner,
            task_id=task_id,
            token=defer_token_check(),
            if_match=conditional.if_match()[1],
        )
        return Response(status=204)


def _update(data: dict[str, Any], user_id: uuid.UUID | str, task_id: uuid.UUID) -> Response:
    """PUT and PATCH: `data` holds the fields to write (PUT: all of them)."""
    owner = resolve_owner(user_id)
    row = tasks.update_task(
        owner_id=owner,
        task_id=task_id,
        changes=data,
        token=defer_token_check(),
        if_match=conditional.if_match()[1],
    )
    return _task_response(row)


@blp.route("/<user_ref:user_id>/tasks/<uuid:task_id>/complete")
class TaskCompletion(_TaskView):
    @takes_if_match
    @blp.doc(
        requestBody={
            "required": False,
            "description": 'No body: toggle. `{"completed": true|false}`: set.',
            "content": {"application/json": {"schema": CompleteIn}},
        }
    )
    @blp.response(200, TaskOut, headers=ETAG_HEADER_DOC)
    @blp.errors(400, 401, 403, 404, 412, 422, 503)
    @blp.doc(operationId="setTaskCompletion", security=BEARER)
    def patch(self, user_id: uuid.UUID | str, task_id: uuid.UUID) -> Any:
        """Toggle or set completion

        With no body (or an empty one) the task flips, atomically; with
        `{"completed": bool}` it is set. `{}` or any other field is a 422.
        """
        body = load_optional_body(CompleteIn())
        owner = resolve_owner(user_id)
        value = None if body is None else body["completed"]
        row = tasks.set_completed(
            owner_id=owner,
            task_id=task_id,
            value=value,
            token=defer_token_check(),
            if_match=conditional.if_match()[1],
        )
        return _task_response(row)


def _task_response(row: dict[str, Any]) -> Response:
    return json_response(task_payload(row), headers={"ETag": task_etag(row)})


@blp.route("/<user_ref:user_id>/tags")
class TagCollection(_TaskView):
    @blp.response(200, TagCountOut(many=True))
    @blp.errors(401, 403, 404, 503)
    @blp.doc(operationId="listTags", security=BEARER)
    def get(self, user_id: uuid.UUID | str) -> Any:
        """List your tags

        Every tag your tasks carry, with the number of tasks carrying it
        (completed ones too), ordered by code point. Not paginated.
        """
        owner = resolve_owner(user_id)
        return json_response(tags.list_tags(owner_id=owner, token=defer_token_check()))
