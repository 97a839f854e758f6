from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from behavior.api import converters  # noqa: F401 (registers the "text" path converter)

from . import views

urlpatterns = [
    path("events", views.EventsView.as_view(), name="events"),
    path("identify", views.IdentifyView.as_view(), name="identify"),
    path("products", views.ProductsView.as_view(), name="products"),
    path("customers/<text:external_id>", views.CustomerView.as_view(), name="customer"),
    path("customers/<text:external_id>/scores", views.CustomerScoresView.as_view(), name="customer-scores"),
    path("customers/<text:external_id>/export", views.CustomerExportView.as_view(), name="customer-export"),
    path("schema", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "docs",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="docs",
    ),
]
