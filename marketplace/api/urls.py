"""Routes of the JSON API, mounted at /api/v1/ (broker/urls.py)."""

from django.urls import path

from marketplace.api.catalog import AcceleratorListView, AcceleratorResolveView, RegionListView
from marketplace.api.offers import (
    OfferBulkView,
    OfferCollectionView,
    OfferDetailView,
    OfferUnlistView,
    ProviderOfferListView,
)
from marketplace.api.tokens import TokenListCreateView, TokenRevokeView

urlpatterns = [
    # offers
    path("offers/", OfferCollectionView.as_view(), name="offers"),
    path("offers/bulk/", OfferBulkView.as_view(), name="offers-bulk"),
    path("offers/<int:pk>/", OfferDetailView.as_view(), name="offer-detail"),
    path("offers/<int:pk>/unlist/", OfferUnlistView.as_view(), name="offer-unlist"),
    path("provider/offers/", ProviderOfferListView.as_view(), name="provider-offers"),
    # reference data
    path("accelerators/", AcceleratorListView.as_view(), name="accelerators"),
    path("accelerators/resolve/", AcceleratorResolveView.as_view(), name="accelerator-resolve"),
    path("regions/", RegionListView.as_view(), name="regions"),
    # API tokens
    path("tokens/", TokenListCreateView.as_view(), name="tokens"),
    path("tokens/<int:pk>/", TokenRevokeView.as_view(), name="token-revoke"),
]
