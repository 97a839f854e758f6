from django.contrib import admin
from django.urls import include, path

# Nothing is served at "/" here: the admin's "View site" would lead to a 404 (a host shop's admin keeps its link).
admin.site.site_url = None

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("behavior.api.urls")),
    path("api/v1/", include("campaigns.api.urls")),
    path("api/v1/", include("support.api.urls")),
]

handler404 = "behavior.api.errors.not_found"
handler500 = "behavior.api.errors.server_error"
