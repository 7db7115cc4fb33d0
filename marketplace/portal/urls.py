"""Routes of the web portal, mounted at the site root (broker/urls.py)."""

from django.urls import path

from marketplace.portal.views import auth, billing, orders, provider, recommend, search

app_name = "portal"

urlpatterns = [
    path("", auth.home, name="home"),
    # accounts
    path("signup/", auth.signup, name="signup"),
    path("signin/", auth.SignInView.as_view(), name="signin"),
    path("signout/", auth.SignOutView.as_view(), name="signout"),
    path("account/tokens/", auth.tokens, name="tokens"),
    path("account/tokens/<int:pk>/revoke/", auth.token_revoke_view, name="token-revoke"),
    # customers
    path("recommend/", recommend.recommend, name="recommend"),
    path("recommend/quote/", recommend.quote, name="quote"),
    path("offers/", search.offers, name="offers"),
    path("offers/<int:offer_id>/order/", orders.offer_order, name="offer-order"),
    path("orders/", orders.order_list, name="orders"),
    path("orders/new/<uuid:quote_id>/<int:offer_id>/", orders.order_new, name="order-new"),
    path("orders/<int:pk>/", orders.order_detail, name="order-detail"),
    path("orders/<int:pk>/live/", orders.order_live, name="order-live"),
    path("orders/<int:pk>/cancel/", orders.order_cancel_view, name="order-cancel"),
    path("billing/", billing.billing, name="billing"),
    path("billing/live/", billing.billing_live, name="billing-live"),
    path("billing/card/", billing.card_save, name="billing-card"),
    path("billing/invoices/order/<int:order_id>/", billing.invoice_order, name="invoice-order"),
    path("billing/invoices/month/<str:month>/", billing.invoice_month, name="invoice-month"),
    # providers
    path("provider/", provider.dashboard, name="provider-dashboard"),
    path("provider/offers/", provider.offer_list, name="provider-offers"),
    path("provider/offers/new/", provider.offer_new, name="provider-offer-new"),
    path("provider/offers/<int:pk>/edit/", provider.offer_edit, name="provider-offer-edit"),
    path("provider/offers/<int:pk>/status/", provider.offer_status, name="provider-offer-status"),
    path("provider/upload/", provider.upload, name="provider-upload"),
    path("provider/upload/confirm/", provider.upload_confirm, name="provider-upload-confirm"),
    path("provider/upload/template.csv", provider.upload_template, name="provider-upload-template"),
    path("provider/organisation/", provider.organisation, name="provider-organisation"),
    path("provider/payouts/onboard/", provider.payouts_onboard, name="provider-payouts-onboard"),
    path("provider/payouts/status/", provider.payouts_live, name="provider-payouts-status"),
]
