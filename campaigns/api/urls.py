from django.urls import path

from . import views

urlpatterns = [
    path("customers/<str:external_id>/placements", views.PlacementsView.as_view(), name="customer-placements"),
    path("offers/<str:code>/redeem", views.RedeemView.as_view(), name="offer-redeem"),
]
