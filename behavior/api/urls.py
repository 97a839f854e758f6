from django.urls import path

from behavior.api import converters  # noqa: F401 (registers the "text" path converter)

from . import views

# Namespaced, so that no name here can shadow one of the project's.
app_name = "foresight_behavior"

urlpatterns = [
    path("events", views.EventsView.as_view(), name="events"),
    path("identify", views.IdentifyView.as_view(), name="identify"),
    path("products", views.ProductsView.as_view(), name="products"),
    path("customers/<text:external_id>", views.CustomerView.as_view(), name="customer"),
    path("customers/<text:external_id>/scores", views.CustomerScoresView.as_view(), name="customer-scores"),
    path("customers/<text:external_id>/export", views.CustomerExportView.as_view(), name="customer-export"),
    path("schema", views.SchemaView.as_view(), name="schema"),
    path("docs", views.DocsView.as_view(url_name="foresight_behavior:schema"), name="docs"),
]
