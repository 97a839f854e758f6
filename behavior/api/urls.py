from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import views

urlpatterns = [
    path("events", views.EventsView.as_view(), name="events"),
    path("identify", views.IdentifyView.as_view(), name="identify"),
    path("products", views.ProductsView.as_view(), name="products"),
    path("customers/<str:external_id>", views.CustomerView.as_view(), name="customer"),
    path("customers/<str:external_id>/scores", views.CustomerScoresView.as_view(), name="customer-scores"),
    path("customers/<str:external_id>/export", views.CustomerExportView.as_view(), name="customer-export"),
    path("schema", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "docs",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="docs",
    ),
]
