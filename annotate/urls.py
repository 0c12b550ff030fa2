from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<int:project_id>/annotate/", views.task, name="annotate_task"),
    path("projects/<int:project_id>/annotate/submit/", views.submit, name="annotate_submit"),
    path("projects/<int:project_id>/annotate/skip/", views.skip, name="annotate_skip"),
    path("projects/<int:project_id>/annotate/undo/", views.undo, name="annotate_undo"),
    path("projects/<int:project_id>/dashboard/", views.project_dashboard, name="annotate_dashboard"),
    path("pairs/<int:pair_id>/", views.pair_detail, name="annotate_pair"),
    path("items/<int:item_id>/checklist/", views.item_checklist, name="item_checklist"),
]
