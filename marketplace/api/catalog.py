"""Reference data: the accelerator catalog, the name resolver behind every accelerator field, and regions."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from broker.hardware.vocabulary import default_vocabulary
from marketplace.api.schema import ERROR_RESPONSES, error_response
from marketplace.errors import ValidationFailed
from marketplace.models import Accelerator, Region


class AcceleratorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Accelerator
        fields = ["id", "canonical_name", "slug", "vendor", "form_factor", "architecture", "aliases",
                  "memory_gb", "memory_type", "memory_bandwidth_gbps", "fp64_tflops", "fp32_tflops",
                  "tf32_tflops", "bf16_tflops", "fp16_tflops", "fp8_tflops", "int8_tops", "tdp_w",
                  "interconnect", "software_stack", "stack_family", "release_year"]


class RegionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Region
        fields = ["id", "key", "name", "country", "latitude", "longitude", "grid_ci_gco2_per_kwh", "pue",
                  "power_price_usd_per_kwh", "energy_zone"]


class CandidateSerializer(serializers.Serializer):
    canonical_name = serializers.CharField()
    slug = serializers.CharField()
    vendor = serializers.CharField()
    memory_gb = serializers.FloatField(allow_null=True)
    form_factor = serializers.CharField()


class ResolutionSerializer(serializers.Serializer):
    query = serializers.CharField()
    status = serializers.ChoiceField(choices=["exact", "ambiguous"])
    canonical_name = serializers.CharField(allow_null=True, help_text="Set when status is exact.")
    candidates = CandidateSerializer(many=True, help_text="One when exact; every model it could be when "
                                     "ambiguous (searches read an ambiguous name as 'any of these').")
    message = serializers.CharField()


class AcceleratorListView(ListAPIView):
    serializer_class = AcceleratorSerializer
    pagination_class = None
    filter_backends: list = []
    queryset = Accelerator.objects.order_by("vendor", "canonical_name")

    @extend_schema(operation_id="accelerators_list", summary="The accelerator catalog",
                   responses={200: AcceleratorSerializer(many=True), **ERROR_RESPONSES}, tags=["catalog"])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class AcceleratorResolveView(APIView):
    @extend_schema(
        operation_id="accelerators_resolve", summary="What an accelerator name means",
        description="200 when the name is one model (`exact`) or several (`ambiguous`, with the candidates); "
                    "400 with did-you-mean `suggestions` when it is unknown.",
        parameters=[OpenApiParameter("name", OpenApiTypes.STR, required=True,
                                     description="e.g. A100, H100 SXM")],
        responses={200: ResolutionSerializer,
                   400: error_response("Unknown name; `error.suggestions` lists close names."),
                   401: ERROR_RESPONSES[401]},
        tags=["catalog"])
    def get(self, request: Request) -> Response:
        name = (request.query_params.get("name") or "").strip()
        if not name:
            raise ValidationFailed("name: This parameter is required.",
                                   fields={"name": ["This parameter is required."]})
        vocabulary = default_vocabulary()
        res = vocabulary.resolve(name)
        if res.status == "unknown":
            raise ValidationFailed(res.message(), fields={"name": [res.message()]},
                                   code="unknown_accelerator", extra={"suggestions": list(res.suggestions)})
        candidates = [vocabulary.by_name[c] for c in res.candidates]
        return Response(ResolutionSerializer({
            "query": res.query, "status": res.status, "canonical_name": res.canonical,
            "candidates": [{"canonical_name": s.canonical_name, "slug": s.slug, "vendor": s.vendor,
                            "memory_gb": s.memory_gb, "form_factor": s.form_factor} for s in candidates],
            "message": res.message(),
        }).data)


class RegionListView(ListAPIView):
    serializer_class = RegionSerializer
    pagination_class = None
    filter_backends: list = []
    queryset = Region.objects.order_by("key")

    @extend_schema(operation_id="regions_list", summary="Regions with their energy facts",
                   responses={200: RegionSerializer(many=True), **ERROR_RESPONSES}, tags=["catalog"])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)
