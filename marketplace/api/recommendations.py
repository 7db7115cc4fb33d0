"""POST /api/v1/recommendations/: workload in, ranked offers with explanations and a price-locked quote out."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.api.recommendation_serializers import (
    RecommendationRequestSerializer,
    RecommendationResponseSerializer,
)
from marketplace.api.schema import ERROR_RESPONSES, THROTTLED_RESPONSES
from marketplace.errors import ValidationFailed
from marketplace.services.quotes import quote_create
from marketplace.throttling import FailOpenRateThrottle


class RecommendationView(APIView):
    throttle_classes = [FailOpenRateThrottle]
    throttle_scope = "recommendations"

    @extend_schema(
        operation_id="recommendations_create",
        request=RecommendationRequestSerializer,
        responses={200: RecommendationResponseSerializer, **ERROR_RESPONSES, **THROTTLED_RESPONSES},
        examples=[
            OpenApiExample("8×H100 for 10 h", value={"resources": {"accelerator": "H100", "count": 8},
                                                     "duration_hours": 10, "objective": "cost"}, request_only=True),
            OpenApiExample("Serve Llama 3 70B", value={
                "workload": {"kind": "llm_inference", "model": "llama-3-70b", "precision": "fp16",
                             "tokens_per_second": 2000},
                "duration_hours": 24, "max_price_per_hour": 40, "objective": "cost"}, request_only=True),
        ],
        description="Rank listed offers by the total cost, time or carbon of the described work. A valid request "
                    "that matches nothing is a 200 with an empty list, `excluded` and `relaxations` saying why.",
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ValidationFailed("The request must be a JSON object.", code="invalid_request")
        RecommendationRequestSerializer(data=request.data).is_valid(raise_exception=True)
        _, answer = quote_create(request.user, request.data)
        return Response(answer, status=status.HTTP_200_OK)
