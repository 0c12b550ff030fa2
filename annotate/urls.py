from __future__ import annotations

from django.urls import path

from . import member_views, routing_views, study_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<int:project_id>/annotate/", views.task, name="annotate_task"),
    path("projects/<int:project_id>/annotate/submit/", views.submit, name="annotate_submit"),
    path("projects/<int:project_id>/annotate/skip/", views.skip, name="annotate_skip"),
    path("projects/<int:project_id>/annotate/undo/", views.undo, name="annotate_undo"),
    path("projects/<int:project_id>/annotate/feedback/<uuid:view_key>/", views.training_feedback, name="annotate_feedback"),
    path("projects/<int:project_id>/dashboard/", views.project_dashboard, name="annotate_dashboard"),
    path("pairs/<int:pair_id>/", views.pair_detail, name="annotate_pair"),
    # Membership and invitations (issue 12): the project's researchers.
    path("projects/<int:project_id>/members/", member_views.members, name="project_members"),
    path("projects/<int:project_id>/members/<int:user_id>/remove/", member_views.member_remove_view,
         name="project_member_remove"),
    path("projects/<int:project_id>/invites/", member_views.invite_create_view, name="project_invite_create"),
    path("projects/<int:project_id>/invites/<int:invite_id>/revoke/", member_views.invite_revoke_view,
         name="project_invite_revoke"),
    path("invites/<str:invite_token>/", member_views.invite_accept_view, name="invite_accept"),
    # Crowd studies (issue 12): researchers' pages, and the participant's link, completion and return.
    path("projects/<int:project_id>/studies/", study_views.studies, name="project_studies"),
    path("studies/<int:study_id>/close/", study_views.study_close_view, name="study_close"),
    path("studies/<int:study_id>/payments/", study_views.study_payments, name="study_payments"),
    path("studies/<int:study_id>/payments.csv", study_views.study_payments_csv, name="study_payments_csv"),
    path("study/<str:study_token>/", study_views.study_entry, name="study_entry"),
    path("study/<str:study_token>/complete/", study_views.study_complete, name="study_complete"),
    path("study/<str:study_token>/return/", study_views.study_return, name="study_return"),
    path("study/<str:study_token>/screened-out/", study_views.study_screened_out, name="study_screened_out"),
    path("projects/<int:project_id>/review/", views.review_queue, name="annotate_review"),
    path("projects/<int:project_id>/review/<int:pair_id>/", views.review_pair, name="annotate_review_pair"),
    path("projects/<int:project_id>/standings/<int:rater_id>/", views.standing_decide, name="annotate_standing_decide"),
    path("projects/<int:project_id>/routing/", routing_views.routing_page, name="annotate_routing"),
    path("projects/<int:project_id>/routing/panels/", routing_views.panel_create_view, name="annotate_panel_create"),
    path("items/<int:item_id>/checklist/", views.item_checklist, name="item_checklist"),
]
