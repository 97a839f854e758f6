from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("behavior.api.urls")),
    path("api/v1/", include("campaigns.api.urls")),
    path("api/v1/", include("support.api.urls")),
]

handler404 = "behavior.api.errors.not_found"
handler500 = "behavior.api.errors.server_error"
