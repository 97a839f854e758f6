from django.urls import path

from . import views

urlpatterns = [
    path("customers/<str:external_id>/help", views.HelpView.as_view(), name="customer-help"),
    path("customers/<str:external_id>/help/<int:ticket_id>/ack", views.HelpAcknowledgeView.as_view(),
         name="customer-help-ack"),
    path("customers/<str:external_id>/tickets", views.CustomerTicketsView.as_view(), name="customer-tickets"),
]
