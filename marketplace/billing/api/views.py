"""Billing endpoints: credit and top-ups, order charges and refunds, invoices (JSON and CSV), provider payouts
(Stripe Connect onboarding, account, transfers) and operator tools. Thin: validate, call one service or
selector, render."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.api.schema import ERROR_RESPONSES, WRITE_ERROR_RESPONSES, error_response
from marketplace.billing.api.serializers import (
    ChargeSerializer,
    CreditSerializer,
    OnboardingInputSerializer,
    OverdraftInputSerializer,
    PayoutAccountSerializer,
    ProfileInputSerializer,
    RefundInputSerializer,
    TopUpInputSerializer,
    TopUpSerializer,
    TransferSerializer,
)
from marketplace.billing.models import ProviderTransfer
from marketplace.billing.selectors.billing import (
    charge_for,
    charges_for,
    credit_summary,
    payout_account_for,
    topup_for,
    topups_for,
    transfers_for,
)
from marketplace.billing.selectors.invoices import invoice_csv, invoice_index, monthly_invoice, order_invoice
from marketplace.billing.services.customers import billing_profile_update, billing_set_overdraft
from marketplace.billing.services.orders import billing_refund_order
from marketplace.billing.services.payouts import billing_retry_transfer, provider_onboarding_link
from marketplace.billing.services.topups import topup_create
from marketplace.errors import NotFoundError, PermissionDeniedError, ValidationFailed
from marketplace.models import User

TAGS = ["billing"]
PAYMENT_ERRORS = {**WRITE_ERROR_RESPONSES, 402: error_response("The card was declined (`decline_code`)."),
                  503: error_response("Stripe did not answer; retrying is safe.")}


def _operator(request: Request) -> None:
    if not getattr(request.user, "is_operator", False):
        raise PermissionDeniedError("Operators only.")


def _provider_member(request: Request) -> None:
    """Before the input is read, so that who may not call an endpoint learns nothing from its validation."""
    if not getattr(request.user, "is_provider_member", False):
        raise PermissionDeniedError("Only provider members can set up payouts.")


def _customer(request: Request) -> None:
    if getattr(request.user, "role", None) != "customer":
        raise PermissionDeniedError("Only customers hold prepaid credit.")


class CreditView(APIView):
    @extend_schema(operation_id="billing_credit", summary="Your prepaid credit balance and billing mode",
                   responses={200: CreditSerializer, **ERROR_RESPONSES}, tags=TAGS)
    def get(self, request: Request) -> Response:
        return Response(CreditSerializer(credit_summary(request.user)).data)


class ProfileView(APIView):
    @extend_schema(operation_id="billing_profile_update", summary="Save your default card (a PaymentMethod id)",
                   request=ProfileInputSerializer, responses={200: CreditSerializer, **ERROR_RESPONSES}, tags=TAGS)
    def put(self, request: Request) -> Response:
        data = ProfileInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        billing_profile_update(request.user, **data.validated_data)
        return Response(CreditSerializer(credit_summary(request.user)).data)


class TopUpCollectionView(ListAPIView):
    serializer_class = TopUpSerializer
    filter_backends: list = []

    def get_queryset(self):
        return topups_for(self.request.user)

    @extend_schema(operation_id="billing_topups_list", summary="Your credit top-ups",
                   responses={200: TopUpSerializer(many=True), **ERROR_RESPONSES}, tags=TAGS)
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(operation_id="billing_topups_create",
                   summary="Buy prepaid credit (credited when Stripe confirms the payment by webhook)",
                   request=TopUpInputSerializer, responses={201: TopUpSerializer, **PAYMENT_ERRORS}, tags=TAGS)
    def post(self, request: Request) -> Response:
        _customer(request)
        data = TopUpInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        topup = topup_create(request.user, **data.validated_data)
        return Response(TopUpSerializer(topup).data, status=status.HTTP_201_CREATED)


class TopUpDetailView(APIView):
    @extend_schema(operation_id="billing_topups_get", summary="One top-up",
                   responses={200: TopUpSerializer, **WRITE_ERROR_RESPONSES}, tags=TAGS)
    def get(self, request: Request, pk: int) -> Response:
        return Response(TopUpSerializer(topup_for(request.user, pk)).data)


class ChargeCollectionView(ListAPIView):
    serializer_class = ChargeSerializer
    filter_backends: list = []

    def get_queryset(self):
        return charges_for(self.request.user).prefetch_related("refunds")

    @extend_schema(operation_id="billing_charges_list", summary="Billing of your orders",
                   responses={200: ChargeSerializer(many=True), **ERROR_RESPONSES}, tags=TAGS)
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class ChargeDetailView(APIView):
    @extend_schema(operation_id="billing_charges_get", summary="Billing of one order",
                   responses={200: ChargeSerializer, **WRITE_ERROR_RESPONSES}, tags=TAGS)
    def get(self, request: Request, order_id: int) -> Response:
        return Response(ChargeSerializer(charge_for(request.user, order_id)).data)


class ChargeRefundView(APIView):
    @extend_schema(operation_id="billing_charges_refund",
                   summary="Operators: refund an order (all of it, or `amount`); fee and provider share shrink "
                           "in proportion",
                   request=RefundInputSerializer, responses={200: ChargeSerializer, **PAYMENT_ERRORS,
                                                             409: error_response("The payment is being captured.")},
                   tags=TAGS)
    def post(self, request: Request, order_id: int) -> Response:
        _operator(request)
        data = RefundInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        charge_for(request.user, order_id)
        charge = billing_refund_order(order_id, **data.validated_data)
        return Response(ChargeSerializer(charge).data)


class InvoiceIndexView(APIView):
    @extend_schema(operation_id="billing_invoices_list", summary="Your invoices: per order and per month",
                   responses={200: dict, **ERROR_RESPONSES}, tags=TAGS)
    def get(self, request: Request) -> Response:
        return Response(invoice_index(request.user))


def _csv(invoice: dict) -> HttpResponse:
    response = HttpResponse(invoice_csv(invoice), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{invoice["number"]}.csv"'
    return response


class OrderInvoiceView(APIView):
    @extend_schema(operation_id="billing_invoices_order", summary="The invoice of one order (JSON)",
                   responses={200: dict, **WRITE_ERROR_RESPONSES}, tags=TAGS)
    def get(self, request: Request, order_id: int) -> Response:
        return Response(order_invoice(request.user, order_id))


class OrderInvoiceCsvView(APIView):
    @extend_schema(operation_id="billing_invoices_order_csv", summary="The invoice of one order (CSV download)",
                   responses={(200, "text/csv"): str, **WRITE_ERROR_RESPONSES}, tags=TAGS)
    def get(self, request: Request, order_id: int) -> HttpResponse:
        return _csv(order_invoice(request.user, order_id))


class MonthlyInvoiceView(APIView):
    @extend_schema(operation_id="billing_invoices_month", summary="Your invoice for a month, YYYY-MM (JSON)",
                   responses={200: dict, **ERROR_RESPONSES}, tags=TAGS)
    def get(self, request: Request, month: str) -> Response:
        return Response(monthly_invoice(request.user, month))


class MonthlyInvoiceCsvView(APIView):
    @extend_schema(operation_id="billing_invoices_month_csv", summary="Your invoice for a month (CSV download)",
                   responses={(200, "text/csv"): str, **ERROR_RESPONSES}, tags=TAGS)
    def get(self, request: Request, month: str) -> HttpResponse:
        return _csv(monthly_invoice(request.user, month))


class OnboardingLinkView(APIView):
    @extend_schema(operation_id="billing_provider_onboarding_link",
                   summary="Providers: a Stripe Connect (Express) onboarding link for payouts",
                   request=OnboardingInputSerializer, responses={200: dict, **PAYMENT_ERRORS}, tags=TAGS)
    def post(self, request: Request) -> Response:
        _provider_member(request)
        data = OnboardingInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        here = request.build_absolute_uri("/api/v1/billing/provider/payout-account/")
        account, link = provider_onboarding_link(user=request.user,
                                                 return_url=data.validated_data.get("return_url", here),
                                                 refresh_url=data.validated_data.get("refresh_url", here))
        return Response({"url": link["url"], "expires_at": link.get("expires_at"),
                         "account": PayoutAccountSerializer(account).data})


class PayoutAccountView(APIView):
    @extend_schema(operation_id="billing_provider_payout_account", summary="Providers: your payout account status",
                   responses={200: PayoutAccountSerializer, **WRITE_ERROR_RESPONSES}, tags=TAGS)
    def get(self, request: Request) -> Response:
        account = payout_account_for(request.user)
        if account is None:
            raise NotFoundError("No payout account yet: ask for an onboarding link first.")
        return Response(PayoutAccountSerializer(account).data)


class TransferCollectionView(ListAPIView):
    serializer_class = TransferSerializer
    filter_backends: list = []

    def get_queryset(self):
        wanted = self.request.query_params.get("status") or None
        if wanted is not None and wanted not in ProviderTransfer.Status.values:
            raise ValidationFailed("Unknown status.", fields={"status": [
                f"One of {', '.join(ProviderTransfer.Status.values)}."]})
        return transfers_for(self.request.user, status=wanted)

    @extend_schema(operation_id="billing_transfers_list",
                   summary="Provider transfers (providers: yours; operators: all, e.g. ?status=failed)",
                   parameters=[OpenApiParameter("status", str, enum=ProviderTransfer.Status.values)],
                   responses={200: TransferSerializer(many=True), **ERROR_RESPONSES}, tags=TAGS)
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class TransferRetryView(APIView):
    @extend_schema(operation_id="billing_transfers_retry", summary="Operators: retry a failed transfer now",
                   request=None, responses={200: TransferSerializer, **WRITE_ERROR_RESPONSES}, tags=TAGS)
    def post(self, request: Request, pk: int) -> Response:
        _operator(request)
        if not ProviderTransfer.objects.filter(pk=pk).exists():
            raise NotFoundError(f"No transfer {pk}.")
        return Response(TransferSerializer(billing_retry_transfer(operator=request.user, transfer_id=pk)).data)


class OverdraftView(APIView):
    @extend_schema(operation_id="billing_customer_overdraft",
                   summary="Operators: let a customer's credit go below zero, down to -overdraft_limit",
                   request=OverdraftInputSerializer, responses={200: CreditSerializer, **WRITE_ERROR_RESPONSES},
                   tags=TAGS)
    def put(self, request: Request, user_id: int) -> Response:
        _operator(request)
        data = OverdraftInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        customer = User.objects.filter(pk=user_id, role="customer").first()
        if customer is None:
            raise NotFoundError(f"No customer {user_id}.")
        billing_set_overdraft(operator=request.user, customer=customer, limit=data.validated_data["overdraft_limit"])
        return Response(CreditSerializer(credit_summary(customer)).data)
