from django.apps import AppConfig


class AnnotateConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotate"

    def ready(self) -> None:
        # Connects the membership signal of the audit trail in every process (web, worker, shell).
        from . import audit  # noqa: F401
