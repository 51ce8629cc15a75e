"""``manage.py jobqueue_worker``: the same command as ``runworker``, under a name that channels'
own ``runworker`` cannot shadow."""

from .runworker import Command  # noqa: F401
