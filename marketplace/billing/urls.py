from django.urls import path

from marketplace.billing.api import views
from marketplace.billing.api.webhooks import stripe_connect_webhook, stripe_webhook

urlpatterns = [
    path("stripe/webhook/", stripe_webhook, name="stripe-webhook"),
    path("stripe/connect-webhook/", stripe_connect_webhook, name="stripe-connect-webhook"),
    path("billing/credit/", views.CreditView.as_view(), name="billing-credit"),
    path("billing/profile/", views.ProfileView.as_view(), name="billing-profile"),
    path("billing/topups/", views.TopUpCollectionView.as_view(), name="billing-topups"),
    path("billing/topups/<int:pk>/", views.TopUpDetailView.as_view(), name="billing-topup"),
    path("billing/charges/", views.ChargeCollectionView.as_view(), name="billing-charges"),
    path("billing/charges/<int:order_id>/", views.ChargeDetailView.as_view(), name="billing-charge"),
    path("billing/charges/<int:order_id>/refund/", views.ChargeRefundView.as_view(), name="billing-charge-refund"),
    path("billing/invoices/", views.InvoiceIndexView.as_view(), name="billing-invoices"),
    path("billing/invoices/orders/<int:order_id>/", views.OrderInvoiceView.as_view(), name="billing-invoice-order"),
    path("billing/invoices/orders/<int:order_id>/csv/", views.OrderInvoiceCsvView.as_view(),
         name="billing-invoice-order-csv"),
    path("billing/invoices/months/<str:month>/", views.MonthlyInvoiceView.as_view(), name="billing-invoice-month"),
    path("billing/invoices/months/<str:month>/csv/", views.MonthlyInvoiceCsvView.as_view(),
         name="billing-invoice-month-csv"),
    path("billing/provider/onboarding-link/", views.OnboardingLinkView.as_view(), name="billing-onboarding-link"),
    path("billing/provider/payout-account/", views.PayoutAccountView.as_view(), name="billing-payout-account"),
    path("billing/transfers/", views.TransferCollectionView.as_view(), name="billing-transfers"),
    path("billing/transfers/<int:pk>/retry/", views.TransferRetryView.as_view(), name="billing-transfer-retry"),
    path("billing/customers/<int:user_id>/overdraft/", views.OverdraftView.as_view(), name="billing-overdraft"),
]
