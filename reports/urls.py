from __future__ import annotations

from django.urls import path

from . import card_views, views

app_name = "reports"
urlpatterns = [
    path("evaluators/", card_views.evaluators_page, name="evaluators"),
    path("projects/<int:project_id>/", views.project, name="project"),
    path("projects/<int:project_id>/qualify/", views.qualify, name="qualify"),
    path("projects/<int:project_id>/<slug:page>/", views.project, name="page"),
]
