"""The operator's command line, ``manage.py jobqueue <subcommand>``, in the manner of
``rq info``: each subcommand reads Redis (the live truth) or acts through the engine, writes
text for people or, with ``--json``, JSON for scripts, and refuses bad input with a
CommandError that names the value and says what to do, before anything is written.

The management command (``jobqueue/management/commands/jobqueue.py``) only builds the parser
from :data:`SUBCOMMANDS` and hands the options to :func:`run`."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from ..engine.errors import ConnectionFailed, JobqueueError
from . import detail, enqueue, health, maintenance, queues, status, steering
from .base import Output, Subcommand, unreachable

SUBCOMMANDS: dict[str, Subcommand] = {
    sub.name: sub
    for sub in [
        status.SUBCOMMAND,
        health.SUBCOMMAND,
        detail.SUBCOMMAND,
        enqueue.ENQUEUE,
        *steering.SUBCOMMANDS,
        enqueue.TASKS,
        *queues.SUBCOMMANDS,
        *maintenance.SUBCOMMANDS,
    ]
}


def django_options() -> argparse.ArgumentParser:
    """Django's options every command takes, accepted after the subcommand too (``jobqueue
    status --settings=...``); without a default there, so the command's own stay."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbosity", type=int, choices=[0, 1, 2, 3], default=argparse.SUPPRESS
    )
    for flag in ("--settings", "--pythonpath"):
        common.add_argument(flag, default=argparse.SUPPRESS)
    for flag in ("--traceback", "--no-color", "--force-color", "--skip-checks"):
        common.add_argument(flag, action="store_true", default=argparse.SUPPRESS)
    return common


def add_subcommands(parser: Any) -> None:
    """One subparser per subcommand, on the management command's parser."""
    subparsers = parser.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", title="subcommands", required=True
    )
    common = django_options()
    for sub in SUBCOMMANDS.values():
        subparser = subparsers.add_parser(
            sub.name,
            help=sub.help,
            description=sub.description,
            epilog=sub.epilog or None,
            parents=[common],
        )
        sub.arguments(subparser)


def run(options: dict[str, Any], stdout: Any, stderr: Any) -> None:
    """Run the subcommand the options name."""
    run_subcommand(SUBCOMMANDS[options["subcommand"]], options, stdout, stderr)


def run_subcommand(sub: Subcommand, options: dict[str, Any], stdout: Any, stderr: Any) -> None:
    """Run ``sub``. A Redis that cannot be reached is one line naming it; any other jobqueue
    error is the error's own sentence."""
    try:
        sub.handle(options, Output(stdout, stderr))
    except ConnectionFailed as exc:
        raise CommandError(unreachable(exc)) from exc
    except (JobqueueError, ImproperlyConfigured) as exc:  # a refusal, or JOBQUEUE is malformed
        raise CommandError(str(exc)) from exc


def command_for(sub: Subcommand) -> type[BaseCommand]:
    """A management command that is ``sub`` alone, under a name of its own (the commands
    ``jobqueue_mirror``, ``jobqueue_rebuild`` and ``jobqueue_prune`` of earlier versions)."""

    class Command(BaseCommand):
        help = sub.description

        def add_arguments(self, parser: Any) -> None:
            sub.arguments(parser)

        def handle(self, *args: Any, **options: Any) -> None:
            run_subcommand(sub, options, self.stdout, self.stderr)

    return Command


__all__ = ["SUBCOMMANDS", "Subcommand", "add_subcommands", "command_for", "run"]
