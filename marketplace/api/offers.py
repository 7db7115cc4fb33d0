"""Offer endpoints: search (see offer_search.py), detail, and writes by provider members and operators.

A customer may read but not write (403); a provider member writing another provider's offer gets 404, the
same answer as for an offer that does not exist, so ids of other providers' drafts do not leak.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import parsers, permissions, status
from rest_framework.exceptions import ParseError
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.api.offer_search import OfferSearchView
from marketplace.api.offer_serializers import (
    OfferBulkResultSerializer,
    OfferBulkSerializer,
    OfferSerializer,
    OfferWriteSerializer,
)
from marketplace.api.schema import ERROR_RESPONSES, WRITE_ERROR_RESPONSES, error_response
from marketplace.errors import NotFoundError, ValidationFailed
from marketplace.models import Offer
from marketplace.selectors.offers import offer_visible, offers_of_provider
from marketplace.services.offers import (
    MAX_BULK_ROWS,
    offer_create,
    offer_unlist,
    offer_update,
    offers_bulk_upsert,
)


class CanWriteOffers(permissions.BasePermission):
    message = "Only provider members and operators can write offers."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        user = request.user
        return bool(user and user.is_authenticated and (user.is_operator or user.is_provider_member))


class ProviderOnly(CanWriteOffers):
    message = "Only provider members and operators have provider offers."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (user.is_operator or user.is_provider_member))


PERMISSIONS = [permissions.IsAuthenticated, CanWriteOffers]


def _parsed(data: Any, *, partial: bool) -> tuple[dict, dict[str, list[str]]]:
    """(the fields that parsed, field errors). Unknown fields are errors, not silently dropped."""
    if not isinstance(data, Mapping):
        return {}, {"non_field_errors": [f"expected an object, got {type(data).__name__}"]}
    valid_fields = list(OfferWriteSerializer().fields)
    serializer = OfferWriteSerializer(data=data, partial=partial)
    if serializer.is_valid():
        errors: dict[str, list[str]] = {}
        values = dict(serializer.validated_data)
    else:
        errors = {k: [str(m) for m in v] for k, v in serializer.errors.items()}
        rest = OfferWriteSerializer(data={k: v for k, v in data.items() if k not in errors}, partial=True)
        values = dict(rest.validated_data) if rest.is_valid() else {}
    for key in sorted(set(data) - set(valid_fields)):
        errors[key] = [f"unknown field; valid fields: {', '.join(valid_fields)}"]
    return values, errors


def _render(request: Request, offer_id: int, code: int = status.HTTP_200_OK) -> Response:
    offer = offer_visible(user=request.user, offer_id=offer_id)
    return Response(OfferSerializer(offer).data, status=code)


class OfferCollectionView(OfferSearchView):
    permission_classes = PERMISSIONS

    @extend_schema(operation_id="offers_create", summary="Create an offer (provider member or operator)",
                   request=OfferWriteSerializer, responses={201: OfferSerializer, **ERROR_RESPONSES},
                   tags=["offers"])
    def post(self, request: Request) -> Response:
        data, errors = _parsed(request.data, partial=False)
        offer = offer_create(user=request.user, data=data, input_errors=errors)
        return _render(request, offer.pk, status.HTTP_201_CREATED)


class OfferDetailView(APIView):
    permission_classes = PERMISSIONS

    @extend_schema(operation_id="offers_retrieve", summary="One offer (listed, or your provider's)",
                   responses={200: OfferSerializer, **WRITE_ERROR_RESPONSES}, tags=["offers"])
    def get(self, request: Request, pk: int) -> Response:
        offer = offer_visible(user=request.user, offer_id=pk)
        if offer is None:
            raise NotFoundError(f"No offer {pk}.")
        return Response(OfferSerializer(offer).data)

    @extend_schema(operation_id="offers_update", summary="Change an offer of your provider",
                   request=OfferWriteSerializer,
                   responses={200: OfferSerializer, **WRITE_ERROR_RESPONSES,
                              409: error_response("The database refused the change (e.g. duplicate id).")},
                   tags=["offers"])
    def patch(self, request: Request, pk: int) -> Response:
        data, errors = _parsed(request.data, partial=True)
        offer = offer_update(user=request.user, offer_id=pk, data=data, input_errors=errors)
        return _render(request, offer.pk)


class OfferUnlistView(APIView):
    permission_classes = PERMISSIONS

    @extend_schema(operation_id="offers_unlist", summary="Take a listed offer off the market", request=None,
                   responses={200: OfferSerializer, **WRITE_ERROR_RESPONSES,
                              409: error_response("The offer is a draft.")}, tags=["offers"])
    def post(self, request: Request, pk: int) -> Response:
        offer = offer_unlist(user=request.user, offer_id=pk)
        return _render(request, offer.pk)


class OfferCSVParser(parsers.BaseParser):
    """text/csv: a header row of offer field names, then one offer per row; empty cells are omitted."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None) -> dict:
        limit = settings.CSV_MAX_BYTES
        content = stream.read(limit + 1) if stream is not None else b""
        if len(content) > limit:
            message = f"The CSV is over {limit:,} bytes (CSV_MAX_BYTES); split it into several uploads."
            raise ValidationFailed(message, fields={"offers": [message]})
        try:
            text = content.decode((parser_context or {}).get("encoding") or "utf-8")
        except UnicodeDecodeError:
            raise ParseError("CSV must be UTF-8.") from None
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        try:
            rows = list(reader)
        except csv.Error as exc:
            raise ParseError(f"Malformed CSV at line {reader.line_num}: {exc}.") from None
        if not rows:
            raise ParseError("Empty CSV: expected a header row and at least one offer.")
        header = [h.strip() for h in rows[0]]
        valid = list(OfferWriteSerializer().fields)
        unknown = [h for h in header if h not in valid]
        if unknown:
            raise ParseError(f"Unknown CSV column(s) {', '.join(unknown)}; "
                             f"valid columns: {', '.join(valid)}.")
        offers = []
        for line, row in enumerate(rows[1:], start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise ParseError(f"CSV line {line} has {len(row)} cells; the header has {len(header)}.")
            offers.append({k: v.strip() for k, v in zip(header, row, strict=True) if v.strip()})
        return {"offers": offers}


class OfferBulkView(APIView):
    permission_classes = PERMISSIONS
    parser_classes = [parsers.JSONParser, OfferCSVParser]

    @extend_schema(
        operation_id="offers_bulk_upsert",
        summary="Create or update many offers at once (all or nothing)",
        description=f"Rows are matched to your existing offers by `external_id` (required). Every row is "
                    f"checked first; if any fails, the 400 lists each failing row's field errors under "
                    f"`fields.offers.<row index>` and nothing is written. At most {MAX_BULK_ROWS} rows "
                    f"(OFFERS_BULK_MAX_ROWS) and {settings.CSV_MAX_BYTES:,} bytes of CSV (CSV_MAX_BYTES). Also "
                    f"accepts `text/csv` (header row of field names; operators pass `?provider=<slug>`).",
        request=OfferBulkSerializer,
        parameters=[OpenApiParameter("provider", OpenApiTypes.STR, description="Provider slug (operators).")],
        responses={200: OfferBulkResultSerializer, **ERROR_RESPONSES}, tags=["offers"])
    def post(self, request: Request) -> Response:
        envelope = OfferBulkSerializer(data=request.data)
        envelope.is_valid(raise_exception=True)
        parsed = [_parsed(row, partial=True) for row in envelope.validated_data["offers"]]
        provider = envelope.validated_data.get("provider") or request.query_params.get("provider")
        input_errors = {i: errors for i, (_, errors) in enumerate(parsed) if errors}
        result = offers_bulk_upsert(user=request.user, rows=[values for values, _ in parsed],
                                    provider_slug=provider, input_errors=input_errors)
        return Response(OfferBulkResultSerializer(result).data)


class ProviderOfferListView(ListAPIView):
    """Your provider's offers in every status (an operator sees all, or `?provider=<slug>`)."""

    permission_classes = [permissions.IsAuthenticated, ProviderOnly]
    serializer_class = OfferSerializer
    filter_backends: list = []

    def get_queryset(self):
        status_param = self.request.query_params.get("status")
        if status_param and status_param not in Offer.Status.values:
            raise ValidationFailed(f"status: '{status_param}' is not one of {', '.join(Offer.Status.values)}",
                                   fields={"status": [f"not one of {', '.join(Offer.Status.values)}"]})
        return offers_of_provider(user=self.request.user, status=status_param,
                                  provider_slug=self.request.query_params.get("provider"))

    @extend_schema(operation_id="provider_offers_list", summary="Your provider's offers, every status",
                   parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=list(Offer.Status.values)),
                               OpenApiParameter("provider", OpenApiTypes.STR,
                                                description="Provider slug (operators only).")],
                   responses={200: OfferSerializer(many=True), **ERROR_RESPONSES}, tags=["offers"])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)
