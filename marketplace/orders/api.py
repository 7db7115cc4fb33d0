"""Order endpoints: place (with Idempotency-Key), list, detail, events, logs, cancel. Thin: validate, call one
service or selector, render."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.api.schema import ERROR_RESPONSES, THROTTLED_RESPONSES, WRITE_ERROR_RESPONSES, error_response
from marketplace.errors import PermissionDeniedError, ValidationFailed
from marketplace.orders.selectors import order_events, order_for_user, order_log, order_rendered, orders_rendered
from marketplace.orders.serializers import (
    OrderCreateSerializer,
    OrderEventSerializer,
    OrderLogSerializer,
    OrderSerializer,
)
from marketplace.orders.services.cancel import order_cancel
from marketplace.orders.services.placement import order_place
from marketplace.throttling import FailOpenRateThrottle

IDEMPOTENCY_HEADER = OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=True,
                                      description="Any unique string (e.g. a UUID) per order you mean to place; "
                                                  "retrying with the same key and body returns the same order.")
MAX_KEY = 200


def _idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise ValidationFailed("The Idempotency-Key header is required.",
                               fields={"Idempotency-Key": ["This header is required."]})
    if len(key) > MAX_KEY:
        raise ValidationFailed("The Idempotency-Key header is too long.",
                               fields={"Idempotency-Key": [f"At most {MAX_KEY} characters."]})
    return key


def _render(request: Request, order_id: int, code: int = status.HTTP_200_OK) -> Response:
    return Response(OrderSerializer(order_rendered(request.user, order_id)).data, status=code)


class OrderCollectionView(ListAPIView):
    serializer_class = OrderSerializer
    throttle_classes = [FailOpenRateThrottle]
    throttle_scope = "orders"
    filter_backends: list = []

    def get_queryset(self):
        return orders_rendered(self.request.user).order_by("-created_at", "-id")

    @extend_schema(operation_id="orders_list", summary="Your orders (operators: all), newest first",
                   responses={200: OrderSerializer(many=True), **ERROR_RESPONSES}, tags=["orders"])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(operation_id="orders_create", summary="Place an order from a quote or an offer + configuration",
                   parameters=[IDEMPOTENCY_HEADER], request=OrderCreateSerializer,
                   responses={201: OrderSerializer, 200: OrderSerializer, **WRITE_ERROR_RESPONSES,
                              402: error_response("Payment refused: payment_declined (with `decline_code`) or "
                                                  "insufficient_credit; the order is failed and its capacity freed."),
                              409: error_response("Key reused with another body, quote expired (a fresh quote "
                                                  "is in `error.quote`), or no capacity left."),
                              503: error_response("payment_provider_unavailable: Stripe did not answer; the order "
                                                  "is failed; place it again with a new Idempotency-Key."),
                              **THROTTLED_RESPONSES},
                   tags=["orders"])
    def post(self, request: Request) -> Response:
        if not (request.user.role == "customer" or request.user.is_operator):  # before reading the input
            raise PermissionDeniedError("Only customers place orders.")
        key = _idempotency_key(request)
        data = OrderCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order, created = order_place(user=request.user, idempotency_key=key, data=data.placement())
        if created:  # the order as this request committed it (placement loaded what is rendered): not read back
            return Response(OrderSerializer(order).data, status=status.HTTP_201_CREATED)
        return _render(request, order.pk)


class OrderDetailView(APIView):
    @extend_schema(operation_id="orders_retrieve", summary="One order",
                   responses={200: OrderSerializer, **WRITE_ERROR_RESPONSES}, tags=["orders"])
    def get(self, request: Request, pk: int) -> Response:
        return _render(request, pk)


class OrderEventsView(ListAPIView):
    serializer_class = OrderEventSerializer
    filter_backends: list = []

    def get_queryset(self):
        return order_events(order_for_user(self.request.user, self.kwargs["pk"]))

    @extend_schema(operation_id="orders_events", summary="Every state change and pipeline step of an order",
                   responses={200: OrderEventSerializer(many=True), **WRITE_ERROR_RESPONSES}, tags=["orders"])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class OrderLogsView(APIView):
    @extend_schema(operation_id="orders_logs", summary="The job's output as the provider reported it",
                   parameters=[OpenApiParameter("offset", OpenApiTypes.INT, description="Start at this character.")],
                   responses={200: OrderLogSerializer, **WRITE_ERROR_RESPONSES}, tags=["orders"])
    def get(self, request: Request, pk: int) -> Response:
        raw = request.query_params.get("offset", "0")
        if not raw.isdigit():
            raise ValidationFailed("offset must be a non-negative integer.",
                                   fields={"offset": ["A non-negative integer is required."]})
        part = order_log(order_for_user(request.user, pk), int(raw))
        return Response(OrderLogSerializer(part).data)


class OrderCancelView(APIView):
    @extend_schema(operation_id="orders_cancel", summary="Cancel an order (stops its job if it runs)", request=None,
                   responses={200: OrderSerializer, **WRITE_ERROR_RESPONSES,
                              409: error_response("The order is finished (or stopping for another reason).")},
                   tags=["orders"])
    def post(self, request: Request, pk: int) -> Response:
        order_cancel(user=request.user, order_id=pk)
        return _render(request, pk)
