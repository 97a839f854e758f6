"""The shop's URLs as Oscar's documentation sets them up, then the README's lines, pasted at the end."""

from django.apps import apps
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("", include(apps.get_app_config("oscar").urls[0])),
]

# foresight: oscar urls
from django.urls import include, path  # noqa: E402

urlpatterns += [
    path("foresight/api/v1/", include("behavior.api.urls")),
    path("foresight/api/v1/", include("campaigns.api.urls")),
    path("foresight/api/v1/", include("support.api.urls")),
]
