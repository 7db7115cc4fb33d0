"""GET /api/v1/offers/: search listed offers with filter parameters and the `q=` query language.

Pagination is keyset ("cursor"): a page is the `page_size` rows after (or before) the last row seen, in the
requested order with the offer id as tiebreak. No page costs an OFFSET or a COUNT(*), so every page of a large
result is as fast as the first. The cursor is opaque and belongs to the ordering it was made for.
"""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal

from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from broker.query.language import (
    FIELDS,
    OPERATORS,
    SORTABLE_FIELDS,
    Clause,
    QueryError,
    describe_fields,
    parse,
)
from marketplace.api.limits import query_limits
from marketplace.api.offer_serializers import OfferSerializer
from marketplace.api.pagination import page_size_from
from marketplace.api.schema import ERROR_RESPONSES
from marketplace.errors import ValidationFailed
from marketplace.models import Offer
from marketplace.selectors.offers import DEFAULT_ORDERING, Position, offer_search, parse_ordering, sort_value

DEFAULT_PAGE_SIZE = 50


class OfferSearchFilter(filters.FilterSet):
    """The simple filter parameters. Each becomes a query-language clause, so both share one validation."""

    accelerator = filters.CharFilter(help_text="Accelerator name or alias; an ambiguous name means any of.")
    vendor = filters.ChoiceFilter(choices=[(c, c) for c in FIELDS["vendor"].choices])
    stack = filters.ChoiceFilter(choices=[(c, c) for c in FIELDS["stack"].choices])
    min_count = filters.NumberFilter(help_text="At least this many accelerators per node.")
    max_count = filters.NumberFilter(help_text="At most this many accelerators per node.")
    min_memory_gb = filters.NumberFilter(help_text="At least this much memory per accelerator, GB.")
    max_price_per_hour = filters.NumberFilter(help_text="At most this on-demand price per node-hour, USD.")
    max_price_per_accelerator_hour = filters.NumberFilter(help_text="USD per accelerator-hour, at most.")
    region = filters.CharFilter(help_text="Region key or prefix: 'us-east' matches 'us-east-virginia'.")
    country = filters.CharFilter(help_text="ISO 3166 alpha-2 code.")
    interconnect = filters.ChoiceFilter(choices=[(c, c) for c in FIELDS["interconnect"].choices])
    provider = filters.CharFilter(help_text="Provider slug.")

    PARAM_CLAUSES = {
        "accelerator": ("accelerator", "="), "vendor": ("vendor", "="), "stack": ("stack", "="),
        "min_count": ("count", ">="), "max_count": ("count", "<="), "min_memory_gb": ("memory_gb", ">="),
        "max_price_per_hour": ("price_per_hour", "<="),
        "max_price_per_accelerator_hour": ("price_per_accelerator_hour", "<="),
        "region": ("region", "="), "country": ("country", "="), "interconnect": ("interconnect", "="),
        "provider": ("provider", "="),
    }

    _form_class: type | None = None

    def get_form_class(self) -> type:
        # django-filter builds a new Form class (and a form field per filter) on every request; the fields
        # never change, and a Form deep-copies its base fields per instance, so one class can be shared.
        cls = type(self)
        if cls._form_class is None:
            cls._form_class = super().get_form_class()
        return cls._form_class

    @classmethod
    def present_in(cls, params) -> bool:
        return any(params.get(name) not in (None, "") for name in cls.PARAM_CLAUSES)

    def clauses(self) -> tuple[list[Clause], list[str]]:
        """Validated parameters as clauses (plus notes); raises ValidationFailed naming the parameter."""
        if not self.is_valid():
            errors = {k: [str(m) for m in v] for k, v in self.form.errors.items()}
            raise ValidationFailed("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), fields=errors)
        clauses: list[Clause] = []
        notes: list[str] = []
        for param, (field, op) in self.PARAM_CLAUSES.items():
            value = self.form.cleaned_data.get(param)
            if value in (None, ""):
                continue
            text = str(value) if isinstance(value, Decimal) else json.dumps(str(value))
            try:
                query = parse(f"{field}{op}{text}")
            except QueryError as exc:
                raise ValidationFailed(f"{param}: {exc.message}", fields={param: [exc.message]}) from None
            clauses.extend(query.clauses)
            notes.extend(query.notes)
        return clauses, notes


def _page_size(request: Request) -> int:
    return page_size_from(request.query_params.get("page_size"), DEFAULT_PAGE_SIZE)


def encode_cursor(position: Position) -> str:
    raw = json.dumps([position.ordering, position.value, position.id, int(position.backwards)],
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, ordering: str) -> Position:
    def bad(message: str) -> ValidationFailed:
        return ValidationFailed(f"cursor: {message}", fields={"cursor": [message]}, code="invalid_cursor")

    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_ordering, value, last_id, backwards = json.loads(raw)
        if not (isinstance(cursor_ordering, str) and isinstance(last_id, int) and backwards in (0, 1)
                and (value is None or isinstance(value, str))):
            raise ValueError
        if value is not None:
            Decimal(value)
    except (ValueError, TypeError, binascii.Error, ArithmeticError):
        raise bad("not a cursor this API issued; use the 'next' or 'previous' link as given") from None
    if cursor_ordering != ordering:
        raise bad(f"this cursor belongs to ordering={cursor_ordering}, not ordering={ordering}")
    return Position(cursor_ordering, value, last_id, bool(backwards))


Q_DESCRIPTION = f"""Query language, in the style of `vastai search offers`: clauses `field op value`
separated by spaces, all of which must hold. Example:
`accelerator=H100 count>=8 memory_gb>=80 region in [us-east,eu-north] price_per_hour<=30 interconnect=nvlink`.

Operators: `{' '.join(OPERATORS)}`; `<`, `<=`, `>`, `>=` only on numeric fields; `in`/`notin` take a list
`[a,b]`. Quote values with spaces: `accelerator="A100 80GB"`. Units are in the field names. An unknown field,
operator or value is a 400 (code `invalid_query`) whose message lists what is valid. At most 1000 characters
and 30 clauses. Fields:

{describe_fields()}
"""

PAGE_SERIALIZER = inline_serializer("OfferPage", {
    "next": serializers.URLField(allow_null=True, help_text="The next page, or null at the end."),
    "previous": serializers.URLField(allow_null=True, help_text="The page before; null on the first page."),
    "notes": serializers.ListField(child=serializers.CharField(),
                                   help_text="How the query was read, e.g. an ambiguous accelerator name."),
    "results": OfferSerializer(many=True),
})

SEARCH_PARAMETERS = [
    OpenApiParameter("q", OpenApiTypes.STR, description=Q_DESCRIPTION,
                     examples=[OpenApiExample("8x H100 under $30/h", value="accelerator=H100 count>=8 "
                                              "price_per_hour<=30")]),
    OpenApiParameter("ordering", OpenApiTypes.STR,
                     enum=[*SORTABLE_FIELDS, *(f"-{f}" for f in SORTABLE_FIELDS)],
                     description=f"Sort field, '-' for descending; default {DEFAULT_ORDERING}. "
                                 f"Ties break by id."),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="Opaque; from a 'next' or 'previous' link."),
    OpenApiParameter("page_size", OpenApiTypes.INT,
                     description=f"1 to API_MAX_PAGE_SIZE (200 unless configured); default {DEFAULT_PAGE_SIZE}."),
    OpenApiParameter("accelerator", OpenApiTypes.STR, description="Same as q=accelerator=<value>."),
    OpenApiParameter("vendor", OpenApiTypes.STR, enum=list(FIELDS["vendor"].choices)),
    OpenApiParameter("stack", OpenApiTypes.STR, enum=list(FIELDS["stack"].choices)),
    OpenApiParameter("min_count", OpenApiTypes.INT, description="Accelerators per node, at least."),
    OpenApiParameter("max_count", OpenApiTypes.INT, description="Accelerators per node, at most."),
    OpenApiParameter("min_memory_gb", OpenApiTypes.NUMBER,
                     description="Memory per accelerator, GB, at least."),
    OpenApiParameter("max_price_per_hour", OpenApiTypes.NUMBER, description="USD per node-hour, at most."),
    OpenApiParameter("max_price_per_accelerator_hour", OpenApiTypes.NUMBER,
                     description="USD per accelerator-hour, at most."),
    OpenApiParameter("region", OpenApiTypes.STR, description="Region key, or prefix ('us-east', 'cn-*')."),
    OpenApiParameter("country", OpenApiTypes.STR, description="ISO 3166 alpha-2 code."),
    OpenApiParameter("interconnect", OpenApiTypes.STR, enum=list(FIELDS["interconnect"].choices)),
    OpenApiParameter("provider", OpenApiTypes.STR, description="Provider slug."),
]


class OfferSearchView(APIView):
    @extend_schema(operation_id="offers_search", summary="Search listed offers", parameters=SEARCH_PARAMETERS,
                   responses={200: PAGE_SERIALIZER, **ERROR_RESPONSES}, tags=["offers"])
    def get(self, request: Request) -> Response:
        clauses, notes = [], []
        if OfferSearchFilter.present_in(request.query_params):  # skip building the form when unused
            clauses, notes = OfferSearchFilter(request.query_params, queryset=Offer.objects.none()).clauses()
        try:
            query = parse(request.query_params.get("q", ""), limits=query_limits())
        except QueryError as exc:
            extra = {"position": exc.position} if exc.position is not None else {}
            raise ValidationFailed(exc.message, fields={"q": [exc.message]}, code="invalid_query",
                                   extra=extra) from None
        ordering = request.query_params.get("ordering") or DEFAULT_ORDERING
        try:
            field, _ = parse_ordering(ordering)
        except ValueError as exc:
            raise ValidationFailed(str(exc), fields={"ordering": [str(exc)]}) from None
        cursor = request.query_params.get("cursor")
        position = decode_cursor(cursor, ordering) if cursor else None
        limit = _page_size(request)
        rows, more = offer_search(clauses=[*clauses, *query.clauses], ordering=ordering, position=position,
                                  limit=limit)
        backwards = bool(position and position.backwards)
        has_next = more if not backwards else True
        has_previous = (more if backwards else position is not None) and bool(rows)
        url = request.build_absolute_uri()

        def link(row, back: bool) -> str:
            pos = Position(ordering, sort_value(row, field), row["id"], back)
            return replace_query_param(url, "cursor", encode_cursor(pos))

        return Response({
            "next": link(rows[-1], False) if rows and has_next else None,
            "previous": link(rows[0], True) if has_previous else None,
            "notes": [*notes, *query.notes],
            "results": OfferSerializer(rows, many=True).data,
        })
