from __future__ import annotations

from django.urls import path

from . import views

app_name = "reports"
urlpatterns = [
    path("projects/<int:project_id>/", views.project, name="project"),
    path("projects/<int:project_id>/qualify/", views.qualify, name="qualify"),
    path("projects/<int:project_id>/<slug:page>/", views.project, name="page"),
]
