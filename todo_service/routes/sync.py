"""The change feed and clearing (API.md, Sync for offline-first clients;
Clearing completed tasks), on the tasks blueprint: `/tasks/changes` is a
route of its own (not a task id: other methods are 405 with `Allow: GET`),
and `DELETE /tasks` shares its URL with listing and creating."""

from __future__ import annotations

import uuid
from typing import Any

from ..schemas import ChangesArgs, ChangesOut, ClearArgs, ClearedOut
from ..security import defer_token_check, resolve_owner
from ..services import sync
from .common import BEARER, json_response
from .tasks import _TaskView, blp


@blp.route("/<user_ref:user_id>/tasks/changes")
class TaskChanges(_TaskView):
    @blp.arguments(ChangesArgs(), location="query")
    @blp.response(200, ChangesOut)
    @blp.errors(401, 403, 404, 410, 503)
    @blp.doc(operationId="pullTaskChanges", security=BEARER)
    def get(self, args: dict[str, Any], user_id: uuid.UUID | str) -> Any:
        """Pull the changes since your last pull

        Without `since`: every task. With the `cursor` of a previous answer:
        every task created or changed since (once, in its latest state, in
        the order of the changes) and the ids of the tasks deleted since. Pull
        again at once while `has_more`. A cursor older than the deletions
        still remembered (30 days) is a 410: start over without `since`.
        """
        owner = resolve_owner(user_id)
        feed = sync.pull_changes(
            owner_id=owner,
            since=args.get("since"),
            limit=args["limit"],
            token=defer_token_check(),
        )
        return json_response(feed.payload())


@blp.route("/<user_ref:user_id>/tasks", methods=["DELETE"])
class CompletedTasks(_TaskView):
    @blp.arguments(ClearArgs(), location="query")
    @blp.response(200, ClearedOut)
    @blp.errors(401, 403, 404, 503)
    @blp.doc(operationId="clearCompletedTasks", security=BEARER)
    def delete(self, args: dict[str, Any], user_id: uuid.UUID | str) -> Any:
        """Clear your completed tasks

        `status=completed` is required; any other listing filter is a 422
        (`sort`, `page` and `page_size` are ignored). One transaction.
        """
        owner = resolve_owner(user_id)
        return json_response(
            {"deleted": sync.clear_completed(owner_id=owner, token=defer_token_check())}
        )
