"""Billing's typed errors; the API's exception handler renders them in the one error shape."""

from __future__ import annotations

from marketplace.errors import DomainError


class PaymentDeclined(DomainError):
    """The card was declined or needs the customer to authenticate: 402, with Stripe's decline code."""

    status_code = 402
    code = "payment_declined"


class InsufficientCredit(DomainError):
    status_code = 402
    code = "insufficient_credit"


class PaymentProviderUnavailable(DomainError):
    """Stripe could not be reached (after retries). Nothing was charged twice; the same call can be retried."""

    status_code = 503
    code = "payment_provider_unavailable"


class PaymentMethodNotAllowed(DomainError):
    status_code = 400
    code = "payment_method_not_allowed"
