from __future__ import annotations

from django.urls import path

from . import api, card_views

urlpatterns = [
    path("projects/<int:pk>/report/", api.ProjectReportApi.as_view(), name="api-project-report"),
    path("judges/<int:judge_id>/card/", card_views.JudgeCardApi.as_view(), name="api-judge-card"),
    path("evaluators/", card_views.EvaluatorsApi.as_view(), name="api-evaluators"),
]
