"""jobqueue: Redis-backed job queues for Django, managed from the Django admin.

The package root imports nothing from Django so that ``jobqueue.engine`` stays usable (and
benchmarkable) without a configured Django project.
"""

__version__ = "0.1.0"
