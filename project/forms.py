"""The demo page's form: which example task, how many jobs, their priority, delay and queue."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from .examples import BY_NAME, EXAMPLES, Example

MAX_COUNT = 1000
MAX_DELAY = 24 * 3600


def configured_queues() -> list[str]:
    """The queues of the default task backend (settings.TASKS), read when the form is made."""
    backend = getattr(settings, "TASKS", {}).get("default", {})
    return list(backend.get("QUEUES", ["default"]))


class EnqueueForm(forms.Form):
    task = forms.ChoiceField(
        choices=[(example.name, example.name) for example in EXAMPLES],
        error_messages={"required": "Choose a task: click the Enqueue button of its row."},
    )
    count = forms.IntegerField(
        min_value=1,
        max_value=MAX_COUNT,
        initial=1,
        help_text=f"How many jobs, 1 to {MAX_COUNT}; more than one go to Redis in one round trip.",
    )
    priority = forms.IntegerField(
        min_value=-100,
        max_value=100,
        initial=0,
        help_text="-100 to 100; a higher priority runs first.",
    )
    delay = forms.IntegerField(
        label="Delay",
        min_value=0,
        max_value=MAX_DELAY,
        initial=0,
        help_text="Seconds before the jobs may start (0: at once). Until then they are scheduled.",
    )
    queue = forms.ChoiceField(
        required=False,
        help_text="A queue of settings.TASKS, or each task's own (shown in its row).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        queue_field: Any = self.fields["queue"]
        queue_field.choices = [("", "the task's own queue")] + [
            (name, name) for name in configured_queues()
        ]

    @property
    def example(self) -> Example:
        return BY_NAME[self.cleaned_data["task"]]
