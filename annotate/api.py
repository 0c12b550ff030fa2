"""REST API for projects, items, responses, pairs, raters, ratings, preferences and import.

Every view asks `viewer_for` who is calling, and annotate.access (the one permission module)
what they may see: annotators read their own projects, rater and annotations; they never receive
a response's `model` (which would un-blind them) and submit annotations through the task queue,
not here. Researchers see everything in the projects they research. Nobody writes an annotation
in another rater's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from . import access, checklists, importers
from . import serializers as s
from .errors import ImportFileError
from .errors import ValidationError as ServiceValidationError
from .filters import (
    Filter,
    choice,
    created_filters,
    filter_queryset,
    lookup,
    openapi_parameters,
    parse_id,
    parse_int,
    parse_text,
)
from .models import (
    ChecklistQuestion,
    Item,
    Membership,
    Pair,
    Preference,
    Project,
    Rater,
    Rating,
    Response,
    ShownOrder,
)
from .roles import Role, authenticated
from .services import (
    item_create,
    preference_submit,
    project_archive,
    project_create,
    project_update,
    ratings_submit,
)

# --- Who is calling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    user: User
    role: Role

    @property
    def is_researcher(self) -> bool:
        return access.RANK[self.role] >= access.RANK["researcher"]

    def projects(self) -> QuerySet[Project]:
        """The live projects the caller is a member of (what they may list)."""
        return access.projects_visible(self.user)

    def research_projects(self) -> QuerySet[Project]:
        """The projects whose data the caller may read (archived ones included: their history)."""
        return access.projects_visible(self.user, need="research", archived=True)


def viewer_for(request: Request, *, minimum: Role = "annotator") -> Viewer:
    """The caller and their global role; 401 without credentials, 403 without a role or below minimum."""
    cached = getattr(request, "_concordance_viewer", None)
    if cached is None:
        if not request.user or not request.user.is_authenticated:
            raise NotAuthenticated
        cached = Viewer(user=request.user, role=access.require_role(request.user))
        request._concordance_viewer = cached  # type: ignore[attr-defined]
    if access.RANK[cached.role] < access.RANK[minimum]:
        raise PermissionDenied(
            "Researchers and admins only."
            if request.method in SAFE_METHODS
            else "Researchers and admins only; annotators submit through the task queue."
        )
    return cached


class RolePermission(BasePermission):
    """Reads need `view.read_role`, writes `view.write_role` (researcher unless a view says so)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        minimum: Role = getattr(view, "read_role", "annotator") if request.method in SAFE_METHODS else getattr(
            view, "write_role", "researcher"
        )
        viewer_for(request, minimum=minimum)
        return True


class Pages(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000


class BaseApi(GenericAPIView):
    permission_classes = [RolePermission]
    pagination_class = Pages
    filter_backends: list = []  # filtering is ours: see annotate.filters
    filters: Sequence[Filter] = ()
    read_role: Role = "annotator"
    write_role: Role = "researcher"

    @property
    def viewer(self) -> Viewer:
        return viewer_for(self.request)

    def is_schema_request(self) -> bool:
        return getattr(self, "swagger_fake_view", False)

    def list_response(self, queryset: QuerySet, serializer_class: type) -> ApiResponse:
        queryset = filter_queryset(
            queryset, self.request.query_params, self.filters, researcher=self.viewer.is_researcher
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer_class(page, many=True).data)


def service_error(exc: ServiceValidationError) -> ApiResponse:
    return ApiResponse({"detail": str(exc), "field": exc.field}, status=status.HTTP_400_BAD_REQUEST)


def field_error(field: str, message: str) -> ApiResponse:
    return ApiResponse({"detail": message, "field": field}, status=status.HTTP_400_BAD_REQUEST)


def _schema_responses(ok: Any, code: int = 200) -> dict:
    return {
        code: ok,
        400: OpenApiResponse(s.ServiceErrorSerializer, description="Invalid input; `field` names it."),
        401: OpenApiResponse(description="No credentials."),
        403: OpenApiResponse(description="No role, or a researcher-only endpoint."),
    }


# --- Scopes: what each role may see (annotate.access decides) --------------------------------


def _rater_in_project(project_id: int) -> Q:
    return (
        Q(project_id=project_id)
        | Q(user__in=Membership.objects.filter(project_id=project_id).values("user"))
        | Q(Exists(Rating.objects.filter(rater=OuterRef("pk"), response__item__project_id=project_id)))
        | Q(Exists(Preference.objects.filter(rater=OuterRef("pk"), pair__item__project_id=project_id)))
    )


# --- Writes the services module does not have yet ---------------------------------------------
# --- Projects ---------------------------------------------------------------------------------

PROJECT_FILTERS: list[Filter] = [
    Filter("name", parse_text, lookup("name__icontains"), "Name contains (case-insensitive)."),
    Filter("protocols", choice(Project.Protocols.values), lookup("protocols"), "Protocols the project uses."),
    *created_filters(),
]


class ProjectListApi(BaseApi):
    filters = PROJECT_FILTERS

    @extend_schema(
        operation_id="projects_list",
        parameters=openapi_parameters(PROJECT_FILTERS),
        responses=_schema_responses(s.ProjectSerializer(many=True)),
    )
    def get(self, request: Request) -> ApiResponse:
        return self.list_response(self.viewer.projects().prefetch_related("attributes"), s.ProjectSerializer)

    @extend_schema(
        operation_id="projects_create",
        request=s.ProjectCreateSerializer,
        responses=_schema_responses(s.ProjectSerializer, 201),
    )
    def post(self, request: Request) -> ApiResponse:
        data = s.ProjectCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if Project.objects.filter(name=data.validated_data["name"]).exists():
            return field_error("name", "A project with this name exists already.")
        try:
            project = project_create(**data.validated_data)
        except ServiceValidationError as exc:
            return service_error(exc)
        except IntegrityError:
            return field_error("name", "A project with this name exists already.")
        # A researcher sees only projects they belong to; the creator must see what they made.
        project.members.add(authenticated(request.user))
        return ApiResponse(s.ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(BaseApi):
    @extend_schema(operation_id="projects_retrieve", responses=_schema_responses(s.ProjectSerializer))
    def get(self, request: Request, pk: int) -> ApiResponse:
        project = access.project_for(request.user, pk, need="annotate", archived=True)
        return ApiResponse(s.ProjectSerializer(project).data)

    @extend_schema(
        operation_id="projects_update",
        request=s.ProjectUpdateSerializer,
        responses=_schema_responses(s.ProjectSerializer),
    )
    def put(self, request: Request, pk: int) -> ApiResponse:
        return self._update(request, pk, partial=False)

    @extend_schema(
        operation_id="projects_partial_update",
        request=s.ProjectUpdateSerializer,
        responses=_schema_responses(s.ProjectSerializer),
    )
    def patch(self, request: Request, pk: int) -> ApiResponse:
        return self._update(request, pk, partial=True)

    @extend_schema(
        operation_id="projects_archive",
        responses={204: None, 401: OpenApiResponse(description="No credentials."),
                   403: OpenApiResponse(description="Not a researcher of this project.")},
        description="Archives the project: it leaves lists and queues; its annotations, reports and "
        "exports stay. Nothing annotated is deleted through the API.",
    )
    def delete(self, request: Request, pk: int) -> ApiResponse:
        project_archive(project=access.project_for(request.user, pk, need="research", archived=True))
        return ApiResponse(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, pk: int, *, partial: bool) -> ApiResponse:
        project = access.project_for(request.user, pk, need="research")
        data = s.ProjectUpdateSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        name = data.validated_data.get("name")
        if name and Project.objects.filter(name=name).exclude(pk=project.pk).exists():
            return field_error("name", "A project with this name exists already.")
        project_update(project=project, **data.validated_data)
        return ApiResponse(s.ProjectSerializer(project).data)


class ProjectImportApi(BaseApi):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="projects_import",
        request={"multipart/form-data": s.ProjectImportSerializer},
        responses={
            **_schema_responses(s.ImportResultSerializer, 201),
            200: OpenApiResponse(s.ImportResultSerializer, description="Imported into an existing project."),
            400: OpenApiResponse(s.ImportErrorSerializer, description="A bad file: names file, line, field."),
        },
    )
    def post(self, request: Request) -> ApiResponse:
        data = s.ProjectImportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        name: str = data.validated_data["project"]
        # Importing into an existing project writes to it: only its members (or admins) may.
        access.project_for_import(request.user, name)
        try:
            result = importers.import_uploads(
                project_name=name, fmt=data.validated_data["format"], files=data.validated_data["files"],
                user=request.user, gold_share=data.validated_data["gold_share"],
            )
        except ImportFileError as exc:
            # The service names the uploaded file (its client name), never a temporary path.
            return ApiResponse(
                {"detail": exc.detail, "file": exc.path, "line": exc.line, "field": exc.field},
                status=status.HTTP_400_BAD_REQUEST,
            )
        except ServiceValidationError as exc:
            return service_error(exc)
        # The importer adds the caller to the project's members, so a researcher sees what they imported.
        return ApiResponse(
            {
                "project": {"id": result.project.pk, "name": result.project.name},
                "created_project": result.created_project,
                "created": result.counts,
                "in_files": result.totals,
            },
            status=status.HTTP_201_CREATED if result.created_project else status.HTTP_200_OK,
        )


# --- Items, responses, pairs (researchers and admins) -----------------------------------------

ITEM_FILTERS: list[Filter] = [
    Filter("project", parse_id, lookup("project_id"), "Project id."),
    Filter("external_id", parse_text, lookup("external_id"), "External id, exact."),
    Filter("role", choice(Item.Role.values), lookup("role"), "Task, gold or attention item."),
    Filter("model", parse_text, lookup("responses__model"), "Has a response by this model.", True),
    *created_filters(),
]


class ItemListApi(BaseApi):
    read_role = "researcher"
    filters = ITEM_FILTERS

    @extend_schema(
        operation_id="items_list",
        parameters=openapi_parameters(ITEM_FILTERS),
        responses=_schema_responses(s.ItemSerializer(many=True)),
    )
    def get(self, request: Request) -> ApiResponse:
        items = Item.objects.filter(project__in=self.viewer.research_projects()).prefetch_related("responses", "pairs", "checklist")
        if request.query_params.get("model"):
            items = items.distinct()  # a join through responses repeats an item per matching response
        return self.list_response(items, s.ItemSerializer)

    @extend_schema(
        operation_id="items_create",
        request=s.ItemCreateSerializer,
        responses=_schema_responses(s.ItemSerializer, 201),
    )
    def post(self, request: Request) -> ApiResponse:
        data = s.ItemCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        project = access.projects_visible(request.user, need="research").filter(pk=fields.pop("project")).first()
        if project is None:
            return field_error("project", "No such project among yours.")
        if Item.objects.filter(project=project, external_id=fields["external_id"]).exists():
            return field_error("external_id", "This project has an item with this external id already.")
        questions = fields.pop("checklist", [])
        try:
            with transaction.atomic():
                item = item_create(project=project, **fields)
                # The checklist travels with the item: both are stored or neither.
                checklists.checklist_set(item=item, questions=questions, source=ChecklistQuestion.Source.IMPORTED)
        except IntegrityError:
            return field_error("external_id", "This project has an item with this external id already.")
        except ServiceValidationError as exc:
            return service_error(exc)
        item = Item.objects.prefetch_related("responses", "pairs", "checklist").get(pk=item.pk)
        return ApiResponse(s.ItemSerializer(item).data, status=status.HTTP_201_CREATED)


class DetailApi(BaseApi):
    """One object, looked up inside the caller's scope: outside it is a 404, not a 403, so ids
    of other projects' rows are not confirmed to exist."""

    read_role: Role = "researcher"

    def visible(self, queryset: QuerySet, pk: int) -> Any:
        return get_object_or_404(queryset, pk=pk)


class ItemDetailApi(DetailApi):
    @extend_schema(operation_id="items_retrieve", responses=_schema_responses(s.ItemSerializer))
    def get(self, request: Request, pk: int) -> ApiResponse:
        items = Item.objects.filter(project__in=self.viewer.research_projects()).prefetch_related("responses", "pairs", "checklist")
        return ApiResponse(s.ItemSerializer(self.visible(items, pk)).data)


RESPONSE_FILTERS: list[Filter] = [
    Filter("project", parse_id, lookup("item__project_id"), "Project id."),
    Filter("item", parse_id, lookup("item_id"), "Item id."),
    Filter("external_id", parse_text, lookup("external_id"), "External id, exact."),
    Filter("model", parse_text, lookup("model"), "The model that wrote the response.", True),
    *created_filters(),
]


class ResponseListApi(BaseApi):
    read_role = "researcher"
    filters = RESPONSE_FILTERS

    @extend_schema(
        operation_id="responses_list",
        parameters=openapi_parameters(RESPONSE_FILTERS),
        responses=_schema_responses(s.ResponseSerializer(many=True)),
    )
    def get(self, request: Request) -> ApiResponse:
        return self.list_response(
            Response.objects.filter(item__project__in=self.viewer.research_projects()), s.ResponseSerializer
        )


class ResponseDetailApi(DetailApi):
    @extend_schema(operation_id="responses_retrieve", responses=_schema_responses(s.ResponseSerializer))
    def get(self, request: Request, pk: int) -> ApiResponse:
        response = self.visible(Response.objects.filter(item__project__in=self.viewer.research_projects()), pk)
        return ApiResponse(s.ResponseSerializer(response).data)


PAIR_FILTERS: list[Filter] = [
    Filter("project", parse_id, lookup("item__project_id"), "Project id."),
    Filter("item", parse_id, lookup("item_id"), "Item id."),
    Filter("response", parse_id, lambda v: Q(response_a_id=v) | Q(response_b_id=v), "Either response's id."),
    Filter(
        "model",
        parse_text,
        lambda v: Q(response_a__model=v) | Q(response_b__model=v),
        "Either response was written by this model.",
        True,
    ),
    *created_filters(),
]


class PairListApi(BaseApi):
    read_role = "researcher"
    filters = PAIR_FILTERS

    @extend_schema(
        operation_id="pairs_list",
        parameters=openapi_parameters(PAIR_FILTERS),
        responses=_schema_responses(s.PairSerializer(many=True)),
    )
    def get(self, request: Request) -> ApiResponse:
        pairs = Pair.objects.filter(item__project__in=self.viewer.research_projects()).select_related(
            "response_a", "response_b"
        )
        return self.list_response(pairs, s.PairSerializer)


class PairDetailApi(DetailApi):
    @extend_schema(operation_id="pairs_retrieve", responses=_schema_responses(s.PairSerializer))
    def get(self, request: Request, pk: int) -> ApiResponse:
        pair = self.visible(
            Pair.objects.filter(item__project__in=self.viewer.research_projects()).select_related(
                "response_a", "response_b"
            ),
            pk,
        )
        return ApiResponse(s.PairSerializer(pair).data)


# --- Raters -----------------------------------------------------------------------------------

RATER_FILTERS: list[Filter] = [
    Filter("kind", choice(Rater.Kind.values), lookup("kind"), "Human or judge."),
    Filter("name", parse_text, lookup("name__icontains"), "Name contains (case-insensitive)."),
    Filter("project", parse_id, _rater_in_project, "Member of, or annotated in, this project.", True),
    Filter("model", parse_text, lookup("model"), "The response model a judge is.", True),
    *created_filters(),
]


def _RATER_OR_OWN(**kwargs: Any) -> PolymorphicProxySerializer:  # noqa: N802
    """What a rater read returns: the full rater to researchers, the annotator's own without `model`."""
    return PolymorphicProxySerializer(
        component_name="RaterForViewer", serializers=[s.RaterSerializer, s.AnnotatorRaterSerializer],
        resource_type_field_name=None, **kwargs,
    )


class RaterListApi(BaseApi):
    filters = RATER_FILTERS

    @extend_schema(
        operation_id="raters_list",
        parameters=openapi_parameters(RATER_FILTERS),
        responses=_schema_responses(_RATER_OR_OWN(many=True)),
        description="Annotators see only their own rater, without `model`.",
    )
    def get(self, request: Request) -> ApiResponse:
        serializer = s.RaterSerializer if self.viewer.is_researcher else s.AnnotatorRaterSerializer
        return self.list_response(access.raters_visible(request.user).select_related("user"), serializer)


class RaterDetailApi(DetailApi):
    read_role = "annotator"

    @extend_schema(
        operation_id="raters_retrieve",
        responses=_schema_responses(_RATER_OR_OWN()),
        description="Annotators may read only their own rater, without `model`.",
    )
    def get(self, request: Request, pk: int) -> ApiResponse:
        rater = self.visible(access.raters_visible(request.user).select_related("user"), pk)
        serializer = s.RaterSerializer if self.viewer.is_researcher else s.AnnotatorRaterSerializer
        return ApiResponse(serializer(rater).data)


# --- Ratings and preferences ------------------------------------------------------------------

RATING_FILTERS: list[Filter] = [
    Filter("project", parse_id, lookup("response__item__project_id"), "Project id."),
    Filter("item", parse_id, lookup("response__item_id"), "Item id."),
    Filter("response", parse_id, lookup("response_id"), "Response id."),
    Filter("rater", parse_id, lookup("rater_id"), "Rater id."),
    Filter("kind", choice(Rater.Kind.values), lookup("rater__kind"), "Human or judge raters."),
    Filter("attribute", parse_text, lookup("attribute__name"), "Attribute name."),
    Filter("value", parse_int, lookup("value"), "Rated value."),
    Filter("model", parse_text, lookup("response__model"), "The rated response's model.", True),
    *created_filters(),
]


def ratings_for(viewer: Viewer) -> QuerySet[Rating]:
    own = Q(rater__user=viewer.user, response__item__project__in=viewer.projects())
    if not viewer.is_researcher:
        ratings = Rating.objects.filter(own)
    else:
        ratings = Rating.objects.filter(own | Q(response__item__project__in=viewer.research_projects()))
    return ratings.select_related("rater", "attribute", "response")


class RatingListApi(BaseApi):
    filters = RATING_FILTERS

    @extend_schema(
        operation_id="ratings_list",
        parameters=openapi_parameters(RATING_FILTERS),
        responses=_schema_responses(s.RatingSerializer(many=True)),
        description="Annotators see only their own ratings.",
    )
    def get(self, request: Request) -> ApiResponse:
        return self.list_response(ratings_for(self.viewer), s.RatingSerializer)

    @extend_schema(
        operation_id="ratings_create",
        request=s.RatingCreateSerializer,
        responses=_schema_responses(s.RatingSerializer(many=True), 201),
        description="One rating per attribute in `values`; resubmitting replaces the values.",
    )
    def post(self, request: Request) -> ApiResponse:
        data = s.RatingCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        response = (
            Response.objects.select_related("item")
            .filter(pk=fields.pop("response"), item__project__in=self.viewer.projects())
            .first()
        )
        if response is None:
            return field_error("response", "No such response in your projects.")
        rater = access.rater_for_write(request.user, fields.pop("rater", None))
        try:
            ratings = ratings_submit(rater=rater, response=response, **fields)
        except ServiceValidationError as exc:
            return service_error(exc)
        return ApiResponse(s.RatingSerializer(ratings, many=True).data, status=status.HTTP_201_CREATED)


PREFERENCE_FILTERS: list[Filter] = [
    Filter("project", parse_id, lookup("pair__item__project_id"), "Project id."),
    Filter("item", parse_id, lookup("pair__item_id"), "Item id."),
    Filter("pair", parse_id, lookup("pair_id"), "Pair id."),
    Filter("rater", parse_id, lookup("rater_id"), "Rater id."),
    Filter("kind", choice(Rater.Kind.values), lookup("rater_kind"), "Human or judge raters."),
    Filter("shown_order", choice(ShownOrder.values), lookup("shown_order"), "Order shown to the rater."),
    Filter("strength", parse_int, lookup("strength"), "Strength (negative: A better)."),
    Filter(
        "model",
        parse_text,
        lambda v: Q(pair__response_a__model=v) | Q(pair__response_b__model=v),
        "Either response of the pair was written by this model.",
        True,
    ),
    *created_filters(),
]


def preferences_for(viewer: Viewer) -> QuerySet[Preference]:
    own = Q(rater__user=viewer.user, pair__item__project__in=viewer.projects())
    if not viewer.is_researcher:
        preferences = Preference.objects.filter(own)
    else:
        preferences = Preference.objects.filter(own | Q(pair__item__project__in=viewer.research_projects()))
    return preferences.select_related("rater", "pair")


class PreferenceListApi(BaseApi):
    filters = PREFERENCE_FILTERS

    @extend_schema(
        operation_id="preferences_list",
        parameters=openapi_parameters(PREFERENCE_FILTERS),
        responses=_schema_responses(s.PreferenceSerializer(many=True)),
        description="Annotators see only their own preferences.",
    )
    def get(self, request: Request) -> ApiResponse:
        return self.list_response(preferences_for(self.viewer), s.PreferenceSerializer)

    @extend_schema(
        operation_id="preferences_create",
        request=s.PreferenceCreateSerializer,
        responses={
            **_schema_responses(s.PreferenceSerializer, 201),
            200: OpenApiResponse(s.PreferenceSerializer, description="Already stored: the existing preference."),
        },
        description="Idempotent: a human has one preference per pair, a judge one per pair and shown "
        "order; a repeat returns the stored preference with 200.",
    )
    def post(self, request: Request) -> ApiResponse:
        data = s.PreferenceCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        pair = (
            Pair.objects.select_related("item__project")
            .filter(pk=fields.pop("pair"), item__project__in=self.viewer.projects())
            .first()
        )
        if pair is None:
            return field_error("pair", "No such pair in your projects.")
        rater = access.rater_for_write(request.user, fields.pop("rater", None))
        try:
            preference, created = preference_submit(rater=rater, pair=pair, **fields)
        except ServiceValidationError as exc:
            return service_error(exc)
        return ApiResponse(
            s.PreferenceSerializer(preference).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
