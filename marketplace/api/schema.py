"""OpenAPI pieces shared by the API views: the one error shape and the standard error responses."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ERROR_SERIALIZER = inline_serializer("Error", {
    "error": inline_serializer("ErrorBody", {
        "code": serializers.CharField(help_text="Machine-readable, e.g. invalid, invalid_query, not_found."),
        "message": serializers.CharField(help_text="What went wrong, for people."),
        "fields": serializers.DictField(
            child=serializers.JSONField(),
            help_text="Field (or query parameter, or bulk row index) -> list of messages, or nested."),
    }),
})


def error_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(ERROR_SERIALIZER, description=description)


ERROR_RESPONSES = {
    400: error_response("Bad input; `fields` says which."),
    401: error_response("No or invalid token (`Authorization: Token <key>`)."),
    403: error_response("Authenticated, but this role may not do this."),
}
WRITE_ERROR_RESPONSES = {**ERROR_RESPONSES, 404: error_response("No such object (or not yours).")}
THROTTLED_RESPONSES = {429: error_response("Too many requests (code `throttled`): the `Retry-After` header says how "
                                           "many seconds to wait. Limits are per user; see README, Configuration.")}


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents `Authorization: Token <key>` (marketplace.api.authentication.ApiTokenAuthentication)."""

    target_class = "marketplace.api.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Token <key>` (or `Bearer <key>`); create keys at /api/v1/tokens/."}
