"""The live pages' websocket: one per open page, read-only.

Only an authenticated, active staff user who may view jobs is accepted; anyone else is closed
before a single frame of data. The page then sends one message, ``{"subscribe": {...}}``
(which page, and what it shows: see ``pages``), and receives a snapshot of what it shows, then
what changes. The socket accepts nothing that changes anything: actions stay POST and CSRF in
the admin.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from ..conf import get_engine
from .feed import feed_for
from .pages import Page, Refused, page_for

REFUSED = 4403  # the close code of a socket refused (the HTTP status, in the 4000s)


class LiveConsumer(AsyncJsonWebsocketConsumer):
    # No channel layer: what a page is sent comes from the process's feed, not from a layer
    # another process writes to, so a site needs no CHANNEL_LAYERS for live pages.
    channel_layer_alias = None
    page: Page | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not await self._may(user, "jobqueue.view_job"):
            await self.close(code=REFUSED)
            return
        self.user = user
        await self.accept()

    @database_sync_to_async
    def _may(self, user: Any, permission: str) -> bool:
        return bool(
            user is not None
            and user.is_authenticated
            and user.is_active
            and user.is_staff
            and user.has_perm(permission)
        )

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or set(content) != {"subscribe"}:
            await self.send_json({"type": "error", "error": 'Send {"subscribe": {...}} only.'})
            return
        engine = get_engine()
        feed = feed_for(engine)
        try:
            page = page_for(engine, self.send_json, feed, self.user, content["subscribe"])
        except Refused as exc:
            await self.send_json({"type": "error", "error": str(exc)})
            return
        if not await self._may(self.user, page.permission):
            await self.send_json({"type": "error", "error": "You may not view this page."})
            return
        if self.page is not None:
            feed.unsubscribe(self.page)
            self.page.close()
        self.page = page
        feed.subscribe(page)  # before the snapshot: no change falls between the two
        await feed.ready()
        await page.snapshot()

    async def disconnect(self, code: int) -> None:
        if self.page is not None:
            feed_for(get_engine()).unsubscribe(self.page)
            self.page.close()
            self.page = None
