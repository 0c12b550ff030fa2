"""Per-project roles, archiving, and project-scoped imported raters.

The plain many-to-many `Project.members` becomes the through model `Membership` on the same
table (annotate_project_members): the state changes, the rows stay, and a blank role means
"the user's global role", which is exactly what every existing membership meant.

Imported raters (no user, no judge) whose annotations all lie in one project are scoped to that
project; a rater annotating in several projects is left global, as it was (an old import).
"""

from django.conf import settings
from django.db import migrations, models
from django.db.models import Q


def scope_imported_raters(apps, schema_editor):
    Rater = apps.get_model("annotate", "Rater")
    Rating = apps.get_model("annotate", "Rating")
    Preference = apps.get_model("annotate", "Preference")
    Judge = apps.get_model("judges", "Judge")
    judged = Judge.objects.values("rater_id")
    for rater in Rater.objects.filter(user__isnull=True, project__isnull=True).exclude(pk__in=judged):
        projects = set(
            Rating.objects.filter(rater=rater).values_list("response__item__project_id", flat=True).distinct()
        ) | set(Preference.objects.filter(rater=rater).values_list("pair__item__project_id", flat=True).distinct())
        if len(projects) == 1:
            rater.project_id = projects.pop()
            rater.save(update_fields=["project"])


class Migration(migrations.Migration):

    dependencies = [
        ("annotate", "0005_preference_verdict_only"),
        ("judges", "0003_run_filters"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Membership",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("project", models.ForeignKey(on_delete=models.deletion.CASCADE, related_name="memberships", to="annotate.project")),
                        ("user", models.ForeignKey(on_delete=models.deletion.CASCADE, related_name="memberships", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={"db_table": "annotate_project_members"},
                ),
                migrations.AlterField(
                    model_name="project",
                    name="members",
                    field=models.ManyToManyField(blank=True, related_name="projects", through="annotate.Membership", to=settings.AUTH_USER_MODEL),
                ),
            ],
            database_operations=[],
        ),
        migrations.AddField(
            model_name="membership",
            name="role",
            field=models.CharField(blank=True, choices=[("", "As the user's global role"), ("annotator", "Annotator"), ("reviewer", "Reviewer"), ("researcher", "Researcher")], default="", max_length=10),
        ),
        migrations.AddConstraint(
            model_name="membership",
            constraint=models.UniqueConstraint(fields=("project", "user"), name="membership_once_per_user"),
        ),
        migrations.AddField(
            model_name="project",
            name="archived_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="rater",
            name="project",
            field=models.ForeignKey(blank=True, null=True, on_delete=models.deletion.PROTECT, related_name="imported_raters", to="annotate.project"),
        ),
        migrations.RemoveConstraint(model_name="rater", name="rater_unique_kind_name"),
        migrations.AddConstraint(
            model_name="rater",
            constraint=models.UniqueConstraint(condition=Q(project__isnull=True), fields=("kind", "name"), name="rater_unique_kind_name"),
        ),
        migrations.AddConstraint(
            model_name="rater",
            constraint=models.UniqueConstraint(condition=Q(project__isnull=False), fields=("project", "kind", "name"), name="rater_unique_in_project"),
        ),
        migrations.AddConstraint(
            model_name="rater",
            constraint=models.CheckConstraint(condition=Q(project__isnull=True) | Q(user__isnull=True), name="rater_imported_has_no_user"),
        ),
        migrations.AlterField(
            model_name="rating",
            name="rater",
            field=models.ForeignKey(on_delete=models.deletion.PROTECT, related_name="ratings", to="annotate.rater"),
        ),
        migrations.AlterField(
            model_name="preference",
            name="rater",
            field=models.ForeignKey(on_delete=models.deletion.PROTECT, related_name="preferences", to="annotate.rater"),
        ),
        migrations.RunPython(scope_imported_raters, migrations.RunPython.noop),
    ]
