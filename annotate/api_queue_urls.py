from __future__ import annotations

from django.urls import path

from . import api_queue

urlpatterns = [
    path("projects/<int:project_id>/queue/next/", api_queue.QueueNextApi.as_view(), name="api-queue-next"),
    path("projects/<int:project_id>/queue/undo/", api_queue.QueueUndoApi.as_view(), name="api-queue-undo"),
    path("queue/submit/", api_queue.QueueSubmitApi.as_view(), name="api-queue-submit"),
    path("queue/skip/", api_queue.QueueSkipApi.as_view(), name="api-queue-skip"),
]
