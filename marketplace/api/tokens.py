"""API tokens of the signed-in user: list, create (the key is shown once), revoke."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.api.schema import ERROR_RESPONSES, THROTTLED_RESPONSES, WRITE_ERROR_RESPONSES
from marketplace.models import ApiToken
from marketplace.services.tokens import token_create, token_revoke
from marketplace.throttling import FailOpenRateThrottle


class TokenSerializer(serializers.ModelSerializer):
    active = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at", "active"]

    def get_active(self, token: ApiToken) -> bool:
        return token.revoked_at is None


class TokenCreatedSerializer(TokenSerializer):
    key = serializers.CharField(help_text="The secret. Shown only in this response; store it now.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "key"]


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="What the token is for, e.g. 'ci'.")


class TokenListCreateView(ListAPIView):
    serializer_class = TokenSerializer
    throttle_classes = [FailOpenRateThrottle]
    throttle_scope = "tokens"
    filter_backends: list = []

    def get_queryset(self):
        return ApiToken.objects.filter(user=self.request.user).order_by("-created_at", "-id")

    @extend_schema(operation_id="tokens_list", summary="Your API tokens (active and revoked)",
                   responses={200: TokenSerializer(many=True), **ERROR_RESPONSES}, tags=["tokens"])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(operation_id="tokens_create", summary="Create an API token; the key is shown once",
                   request=TokenCreateSerializer,
                   responses={201: TokenCreatedSerializer, **ERROR_RESPONSES, **THROTTLED_RESPONSES},
                   tags=["tokens"])
    def post(self, request: Request) -> Response:
        data = TokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, key = token_create(user=request.user, name=data.validated_data["name"])
        token.key = key
        return Response(TokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)


class TokenRevokeView(APIView):
    @extend_schema(operation_id="tokens_revoke", summary="Revoke one of your tokens", request=None,
                   responses={204: None, **WRITE_ERROR_RESPONSES}, tags=["tokens"])
    def delete(self, request: Request, pk: int) -> Response:
        token_revoke(user=request.user, token_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
