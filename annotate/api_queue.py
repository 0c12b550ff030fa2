"""The task queue over REST: what the annotator pages do, for API clients and the load bench.

One APIView per action; each calls the same annotate.queue service the pages call. Tasks
never carry model names, and a ranking task carries no response ids (ids would reveal the
stored order the annotator is not meant to see).
"""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from . import training
from .access import project_for, require_role
from .bounds import INTEGER_MAX, SMALLINT_MAX, SMALLINT_MIN
from .crowd import participant_finished, participant_in_session
from .errors import ValidationError
from .models import Assignment, Project
from .queue import (
    AssignmentNotFound,
    QueueError,
    assignment_skip,
    assignment_submit_preference,
    assignment_submit_rating,
    assignment_undo,
    assignment_with_task,
    prefetch_attributes,
    progress_for,
)
from .roles import authenticated
from .services import rater_for_user

_CONFLICT = OpenApiResponse(
    {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]},
    description="The task is no longer yours to submit (expired, skipped, or already undone).",
)


_STUDY_DONE = OpenApiResponse(
    {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]},
    description="A crowd-study participant who has done the study's quota, or whom the study screened out, "
    "gets no more tasks.",
)


def _error(exc: Exception) -> ApiResponse:
    if isinstance(exc, ValidationError):
        return ApiResponse({"detail": str(exc), "field": exc.field}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, AssignmentNotFound):
        return ApiResponse({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)
    return ApiResponse({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)


def task_payload(assignment: Assignment, project: Project) -> dict:
    payload: dict = {
        "view_key": str(assignment.view_key),
        "protocol": assignment.protocol,
        "expires_at": assignment.expires_at.isoformat(),
        "draft": assignment.draft,
    }
    if assignment.protocol == Assignment.Protocol.RATING:
        response = assignment.response
        assert response is not None
        item = response.item
        payload["response"] = {"id": response.pk, "text": response.text}
        if "attributes" not in getattr(project, "_prefetched_objects_cache", {}):
            prefetch_attributes(project)  # its query compiled once per process
        payload["attributes"] = [
            {"name": a.name, "description": a.description, "min_value": a.min_value, "max_value": a.max_value,
             "anchors": a.anchors}
            for a in project.attributes.all()
        ]
    else:
        pair = assignment.pair
        assert pair is not None
        item = pair.item
        first, second = (
            (pair.response_a, pair.response_b) if assignment.shown_order == "ab" else (pair.response_b, pair.response_a)
        )
        lo, hi = project.strength_bounds
        payload["responses"] = [{"label": "A", "text": first.text}, {"label": "B", "text": second.text}]
        payload["shown_strength"] = {
            "min": lo, "max": hi, "meaning": "negative: the first shown response (A) is better",
            "justification_required_above": project.justification_required_above,
        }
    payload["item"] = {"id": item.pk, "prompt": item.prompt, "context": item.context, "conversation": item.conversation}
    return payload


class QueueNextApi(APIView):
    """Claim (or resume) the caller's next task in a project. POST: it holds a task."""

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT, 409: _STUDY_DONE}, summary="Claim or resume the next task")
    def post(self, request: Request, project_id: int) -> ApiResponse:
        # The routing policy with it: the claim reads it, no query of its own.
        project = project_for(request.user, project_id, need="annotate", select_related=("routing_policy",))
        rater = rater_for_user(user=authenticated(request.user))
        # A study participant (a session the study link opened) gets no task past the study's quota,
        # here as on the pages (annotate.crowd); no query for anyone else.
        participant = participant_in_session(request._request, project)
        if participant is not None and participant.screened_out_at is not None:
            return ApiResponse({"detail": "This study has ended for you: its screened-out page says where to go."},
                               status=status.HTTP_409_CONFLICT)
        if participant is not None and participant_finished(participant):
            return ApiResponse({"detail": "You have done this study's tasks: its completion page has your code."},
                               status=status.HTTP_409_CONFLICT)
        # Through annotate.training's gate, as the pages: training round first, none while held back.
        gate = training.claim_next(project=project, rater=rater)
        assignment = gate.assignment
        body: dict = {"task": task_payload(assignment_with_task(assignment), project) if assignment else None,
                      "training": gate.training, "standing": gate.state, "standing_message": gate.message}
        if request.query_params.get("progress") == "1":
            p = progress_for(project=project, rater=rater)
            body["progress"] = {"rater_done": p.rater_done, "rater_target": p.rater_target,
                                "project_done": p.project_done, "project_target": p.project_target}
        return ApiResponse(body)


class QueueSubmitApi(APIView):
    class QueueSubmitInputSerializer(serializers.Serializer):
        view_key = serializers.UUIDField()
        # Bounded by the columns (smallint); the service then checks the project's own scale.
        values = serializers.DictField(
            child=serializers.IntegerField(min_value=SMALLINT_MIN, max_value=SMALLINT_MAX), required=False
        )
        shown_strength = serializers.IntegerField(min_value=SMALLINT_MIN, max_value=SMALLINT_MAX, required=False)
        justification = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")
        time_on_task_ms = serializers.IntegerField(required=False, min_value=0, max_value=INTEGER_MAX, allow_null=True)

    @extend_schema(request=QueueSubmitInputSerializer,
                   responses={200: OpenApiTypes.OBJECT, 201: OpenApiTypes.OBJECT, 409: _CONFLICT},
                   summary="Submit a rating or ranking for a claimed task (idempotent per view_key)")
    def post(self, request: Request) -> ApiResponse:
        require_role(request.user)
        serializer = self.QueueSubmitInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        rater = rater_for_user(user=authenticated(request.user))
        try:
            if "shown_strength" in data:
                result = assignment_submit_preference(
                    rater=rater, view_key=data["view_key"], shown_strength=data["shown_strength"],
                    justification=data["justification"], time_on_task_ms=data.get("time_on_task_ms"),
                )
            elif "values" in data:
                result = assignment_submit_rating(
                    rater=rater, view_key=data["view_key"], values=data["values"],
                    time_on_task_ms=data.get("time_on_task_ms"),
                )
            else:
                raise ValidationError("Send `values` for a rating task or `shown_strength` for a ranking task.")
        except (ValidationError, QueueError) as exc:
            return _error(exc)
        training.check_after_submit(assignment=result.assignment)
        feedback = None
        if result.assignment.training:
            labels = {v: f"{v:+d}" if v else "0" for v in range(-3, 4)}
            shown = training.training_feedback(assignment=result.assignment, strength_labels=labels)
            feedback = {"passed": shown.passed, "guideline": shown.guideline,
                        "expected": [{"field": f, "expected": e, "given": g} for f, e, g in shown.rows]}
        return ApiResponse(
            {"stored": not result.duplicate, "duplicate": result.duplicate, "message": result.message,
             "view_key": str(result.assignment.view_key), "training_feedback": feedback},
            status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED,
        )


class QueueSkipApi(APIView):
    class QueueSkipInputSerializer(serializers.Serializer):
        view_key = serializers.UUIDField()
        reason = serializers.CharField(max_length=2000)

    @extend_schema(request=QueueSkipInputSerializer, responses={200: OpenApiTypes.OBJECT, 409: _CONFLICT}, summary="Skip a claimed task with a reason")
    def post(self, request: Request) -> ApiResponse:
        require_role(request.user)
        serializer = self.QueueSkipInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            assignment_skip(rater=rater_for_user(user=authenticated(request.user)), **serializer.validated_data)
        except (ValidationError, QueueError) as exc:
            return _error(exc)
        return ApiResponse({"skipped": True})


class QueueUndoApi(APIView):
    class QueueUndoInputSerializer(serializers.Serializer):
        view_key = serializers.UUIDField(required=False, allow_null=True)

    @extend_schema(request=QueueUndoInputSerializer, responses={200: OpenApiTypes.OBJECT, 409: _CONFLICT}, summary="Undo the newest submission")
    def post(self, request: Request, project_id: int) -> ApiResponse:
        project = project_for(request.user, project_id, need="annotate")
        serializer = self.QueueUndoInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                assignment = assignment_undo(
                    project=project, rater=rater_for_user(user=authenticated(request.user)),
                    view_key=serializer.validated_data.get("view_key"),
                )
        except QueueError as exc:
            return _error(exc)
        return ApiResponse({"task": task_payload(assignment, project)})
