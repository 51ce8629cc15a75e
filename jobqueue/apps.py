from django.apps import AppConfig


class JobqueueConfig(AppConfig):
    name = "jobqueue"
    verbose_name = "Job queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks and the setting_changed receiver.
        from . import checks, conf  # noqa: F401
        from .signals import connect_to_engine

        connect_to_engine()  # every engine of the process sends data_loss_detected
