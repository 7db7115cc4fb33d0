from django.urls import path

from marketplace.orders.api import (
    OrderCancelView,
    OrderCollectionView,
    OrderDetailView,
    OrderEventsView,
    OrderLogsView,
)

urlpatterns = [
    path("orders/", OrderCollectionView.as_view(), name="orders"),
    path("orders/<int:pk>/", OrderDetailView.as_view(), name="order-detail"),
    path("orders/<int:pk>/events/", OrderEventsView.as_view(), name="order-events"),
    path("orders/<int:pk>/logs/", OrderLogsView.as_view(), name="order-logs"),
    path("orders/<int:pk>/cancel/", OrderCancelView.as_view(), name="order-cancel"),
]
