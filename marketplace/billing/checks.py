"""Deploy check (`manage.py check --deploy`): billing's configuration is valid, so a missing STRIPE_SECRET_KEY or a
malformed PLATFORM_FEE_PERCENT stops the deploy with the variable named instead of failing the first payment.
A deploy check, not a default one, so that commands that never take payments (e.g. the provider agent, run on a
provider's machine without Stripe keys) still start."""

from __future__ import annotations

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured


@register("billing", deploy=True)
def billing_configuration(app_configs=None, **kwargs) -> list[Error]:
    from marketplace.billing.conf import billing_settings
    from marketplace.billing.gateway import load_config

    errors = []
    for load in (load_config, billing_settings):
        try:
            load()
        except ImproperlyConfigured as exc:
            errors.append(Error(str(exc), id="billing.E001",
                                hint="See docs/payments.md (Configuration)."))
    return errors
