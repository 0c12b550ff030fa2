from __future__ import annotations

from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from annotate.import_views import import_page
from config.docs import docs_page

# Swagger UI and Redoc set inline styles and Redoc starts a blob: worker; their pages alone get
# that much more than the site's policy (settings.CONTENT_SECURITY_POLICY). Their scripts are
# still our static files only: the split Swagger view serves its init script as a file.
docs_csp = csp_update({"style-src": ["'unsafe-inline'"], "worker-src": ["'self'", "blob:"]})

# Unmatched URLs under /api/ answer JSON like the API's own 404s (config/http_errors.py).
handler404 = "config.http_errors.not_found"

urlpatterns = [
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico whatever the page links; answer with ours, not a 404.
    # Resolved per request: the production static storage needs collectstatic's manifest first.
    path("favicon.ico", lambda request: RedirectView.as_view(url=static("favicon.svg"), permanent=True)(request)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", docs_csp(docs_page(SpectacularSwaggerSplitView.as_view(url_name="schema"))), name="api-docs"),
    path("api/redoc/", docs_csp(docs_page(SpectacularRedocView.as_view(url_name="schema"))), name="api-redoc"),
    # Each app owns its API routes under /api/.
    path("api/", include("annotate.api_urls")),
    path("api/", include("annotate.api_queue_urls")),
    path("api/", include("judges.api_urls")),
    path("api/", include("reports.api_urls")),
    path("api/", include("exports.api_urls")),
    path("import/", import_page, name="import"),
    path("judges/", include("judges.urls")),
    path("reports/", include("reports.urls")),
    path("exports/", include("exports.urls")),
    path("", include("annotate.urls")),
]
