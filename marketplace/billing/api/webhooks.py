"""POST /api/v1/stripe/webhook/ and /api/v1/stripe/connect-webhook/: plain Django views, because the signature
is checked on the raw body exactly as Stripe sent it (no parsing, no authentication, no CSRF)."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from marketplace.api.errors import error_body
from marketplace.billing.gateway import InvalidSignature
from marketplace.billing.services.webhooks import webhook_receive


def _receive(request: HttpRequest, *, connect: bool) -> JsonResponse:
    if request.method != "POST":
        return JsonResponse(error_body("method_not_allowed", f'Method "{request.method}" not allowed.'), status=405)
    try:
        row, created = webhook_receive(request.body, request.headers.get("Stripe-Signature"), connect=connect)
    except InvalidSignature as exc:
        return JsonResponse(error_body("invalid_signature", str(exc)), status=400)
    except ImproperlyConfigured as exc:
        return JsonResponse(error_body("webhooks_not_configured", str(exc)), status=503)
    return JsonResponse({"received": True, "event": row.event_id, "type": row.type, "duplicate": not created})


@csrf_exempt
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    return _receive(request, connect=False)


@csrf_exempt
def stripe_connect_webhook(request: HttpRequest) -> JsonResponse:
    return _receive(request, connect=True)
