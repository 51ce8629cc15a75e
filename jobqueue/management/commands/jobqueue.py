"""``manage.py jobqueue <subcommand>``: the operator's command line (status, health, inspect,
enqueue, retry, cancel, delete, tasks, purge, pause, resume, mirror, rebuild, prune). The
subcommands live in :mod:`jobqueue.cli`; this only wires them to Django."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from jobqueue import cli


class Command(BaseCommand):
    help = (
        "Operate jobqueue from the shell: 'status' shows queues, workers and schedules, "
        "'health' checks them for a monitor, 'inspect' shows a job, 'enqueue', 'retry', "
        "'cancel', 'delete', 'purge', 'pause' and 'resume' act, 'mirror', 'rebuild' and "
        "'prune' keep the admin's database. '--json' writes JSON for scripts where a script "
        "reads the output. 'manage.py jobqueue SUBCOMMAND --help' says more."
    )

    def add_arguments(self, parser: Any) -> None:
        cli.add_subcommands(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        cli.run(options, self.stdout, self.stderr)
