"""Agents API: the signed registration endpoint the reference agent calls, and the provider's management of
its agents (enrol, list, rotate the secret). Views are thin: validate, call one service, render."""

from __future__ import annotations

import json

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.agents.selectors import agent_visible_to, agents_visible_to
from marketplace.agents.serializers import (
    AgentEnrollInput,
    AgentRegisterInput,
    AgentRotateInput,
    AgentSerializer,
    AgentWithSecretSerializer,
)
from marketplace.agents.services import agent_authenticate, agent_enroll, agent_register, agent_rotate_secret
from marketplace.api.schema import ERROR_RESPONSES, WRITE_ERROR_RESPONSES, error_response
from marketplace.errors import PermissionDeniedError, ValidationFailed
from marketplace.services.offers import writable_provider

REGISTER_RESPONSE = inline_serializer("AgentRegistered", {
    "agent": AgentSerializer(),
    "offer": serializers.DictField(allow_null=True),
    "catalog_version": serializers.IntegerField(),
    "secret_in_use": serializers.ChoiceField(choices=["current", "previous"]),
    "previous_secret_expires_at": serializers.DateTimeField(allow_null=True),
})


class AgentRegisterView(APIView):
    """Signed by the agent (X-Agent-Key-Id, X-Signature-Timestamp, X-Signature-Nonce, X-Signature), no token."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=AgentRegisterInput, responses={200: REGISTER_RESPONSE, 400: ERROR_RESPONSES[400],
                                                          401: error_response("Signature refused.")},
                   summary="An agent registers (or refreshes) its capacity")
    def post(self, request: Request) -> Response:
        body = request.body  # the raw bytes: they are what was signed
        agent = agent_authenticate(method=request.method, path=request.get_full_path(), body=body,
                                   header=request.headers.get)
        try:
            payload = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise ValidationFailed("The body is not valid JSON.") from None
        data = AgentRegisterInput(data=payload)
        data.is_valid(raise_exception=True)
        result = agent_register(agent=agent, data=data.validated_data)
        offer = result.offer
        return Response({
            "agent": AgentSerializer(result.agent).data,
            "offer": None if offer is None else {
                "id": offer.pk, "external_id": offer.external_id, "status": offer.status, "driver": offer.driver,
                "nodes_available": offer.nodes_available, "created": result.offer_created,
                "changed": result.offer_changed},
            "catalog_version": result.catalog_version,
            "secret_in_use": result.agent.last_secret_used or "current",
            "previous_secret_expires_at": (result.agent.previous_secret_expires_at
                                           if result.agent.last_secret_used == "previous" else None),
        })


class AgentCollectionView(APIView):
    @extend_schema(responses={200: AgentSerializer(many=True), **ERROR_RESPONSES}, summary="Your provider's agents")
    def get(self, request: Request) -> Response:
        return Response(AgentSerializer(agents_visible_to(request.user), many=True).data)

    @extend_schema(request=AgentEnrollInput, responses={201: AgentWithSecretSerializer, **WRITE_ERROR_RESPONSES},
                   summary="Enrol an agent; the answer shows its secret once")
    def post(self, request: Request) -> Response:
        if not (request.user.is_operator or request.user.is_provider_member):  # before reading the input
            raise PermissionDeniedError("Only provider members and operators manage agents.")
        data = AgentEnrollInput(data=request.data)
        data.is_valid(raise_exception=True)
        provider = writable_provider(user=request.user, provider_slug=data.validated_data.get("provider"))
        agent, _ = agent_enroll(provider=provider, name=data.validated_data["name"])
        return Response(AgentWithSecretSerializer(agent).data, status=status.HTTP_201_CREATED)


class AgentRotateSecretView(APIView):
    @extend_schema(request=AgentRotateInput, responses={200: AgentWithSecretSerializer, **WRITE_ERROR_RESPONSES},
                   summary="Rotate an agent's secret; the previous one stays valid for the grace period")
    def post(self, request: Request, pk: int) -> Response:
        agent = agent_visible_to(request.user, pk)
        data = AgentRotateInput(data=request.data)
        data.is_valid(raise_exception=True)
        agent_rotate_secret(agent_id=agent.pk, grace_s=data.validated_data["grace_seconds"])
        return Response(AgentWithSecretSerializer(agent_visible_to(request.user, pk)).data)
