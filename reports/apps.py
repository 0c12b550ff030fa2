from django.apps import AppConfig


class ReportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reports"

    def ready(self) -> None:
        # The judge's page shows its report card; judges never import reports (reports read
        # judges), so the card is handed to the judge page from here.
        from judges import views as judge_views

        from .card_views import judge_card_context

        judge_views.JUDGE_CARD[:] = [judge_card_context]
