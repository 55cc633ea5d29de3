"""One view that fails an operation and hands it to the DLQ."""

from django.urls import path

from tests.support.django_project.shop import views

urlpatterns = [path("orders/<str:order_id>/charge", views.charge)]
