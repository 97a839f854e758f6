from django.urls import path

from behavior.api import converters  # noqa: F401 (registers the "text" path converter)

from . import views

# Namespaced, so that no name here can shadow one of the project's.
app_name = "foresight_campaigns"

urlpatterns = [
    path("customers/<text:external_id>/placements", views.PlacementsView.as_view(), name="customer-placements"),
    path("offers/<text:code>/redeem", views.RedeemView.as_view(), name="offer-redeem"),
]
