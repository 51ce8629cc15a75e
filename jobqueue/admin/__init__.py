"""jobqueue in the Django admin: jobs, queues, workers and schedules.

Every row shown is a copy the mirror keeps; the admin never writes one. Actions (retry, cancel,
delete, purge, pause, run now) go through the engine (``actions``), ask for confirmation on a
page, act on POST with CSRF, need their permission and the view permission, and are logged in
LogEntry.
"""

from . import jobs, queues, schedules, workers  # noqa: F401 - each registers its ModelAdmin
