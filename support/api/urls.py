from django.urls import path

from behavior.api import converters  # noqa: F401 (registers the "text" path converter)

from . import views

# Namespaced, so that no name here can shadow one of the project's.
app_name = "foresight_support"

urlpatterns = [
    path("customers/<text:external_id>/help", views.HelpView.as_view(), name="customer-help"),
    path("customers/<text:external_id>/help/<int:ticket_id>/ack", views.HelpAcknowledgeView.as_view(),
         name="customer-help-ack"),
    path("customers/<text:external_id>/tickets", views.CustomerTicketsView.as_view(), name="customer-tickets"),
]
