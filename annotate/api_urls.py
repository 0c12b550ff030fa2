"""Core API routes: /api/projects/, items, responses, pairs, raters, ratings, preferences."""

from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("projects/", api.ProjectListApi.as_view(), name="api-projects"),
    path("projects/import/", api.ProjectImportApi.as_view(), name="api-projects-import"),
    path("projects/<int:pk>/", api.ProjectDetailApi.as_view(), name="api-project"),
    path("items/", api.ItemListApi.as_view(), name="api-items"),
    path("items/<int:pk>/", api.ItemDetailApi.as_view(), name="api-item"),
    path("responses/", api.ResponseListApi.as_view(), name="api-responses"),
    path("responses/<int:pk>/", api.ResponseDetailApi.as_view(), name="api-response"),
    path("pairs/", api.PairListApi.as_view(), name="api-pairs"),
    path("pairs/<int:pk>/", api.PairDetailApi.as_view(), name="api-pair"),
    path("raters/", api.RaterListApi.as_view(), name="api-raters"),
    path("raters/<int:pk>/", api.RaterDetailApi.as_view(), name="api-rater"),
    path("ratings/", api.RatingListApi.as_view(), name="api-ratings"),
    path("preferences/", api.PreferenceListApi.as_view(), name="api-preferences"),
]
