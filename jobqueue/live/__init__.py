"""Live admin pages: a websocket per open page, fed from the engine's event streams.

``feed`` follows the streams (one follower per ASGI process, not one per socket) and coalesces
what changed; ``pages`` says what each kind of page is shown and turns changes into its
messages; ``consumer`` is the websocket (staff with ``view_job`` only, read-only). Sites mount
``jobqueue.routing.websocket_urlpatterns``.
"""
