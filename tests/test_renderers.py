"""The API's JSON renderer (orjson) writes exactly what DRF's JSONRenderer writes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer

from marketplace.api.renderers import FastJSONRenderer

PAYLOADS = [
    {"results": [{"id": 1, "price_per_hour": "12.5000", "ok": True, "none": None, "f": 0.1}], "next": None},
    {"when": datetime(2026, 11, 28, 5, 1, 2, 345678, tzinfo=UTC), "day": date(2026, 11, 28),
     "naive": datetime(2026, 1, 1, 12, 0), "offset": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=1)},
    {"money": Decimal("1.10"), "lazy": gettext_lazy("Not found."), "uuid": uuid.UUID(int=7), "tuple": (1, 2)},
    {"text": "Ascend 910B \u2014 \u00e9t\u00e9 \u4e2d\u6587 \u2028 \u2029", 1: "int key"},
    {"big": 2**70, "nested": [[{"a": []}], {}]},
    [],
]


@pytest.mark.parametrize("data", PAYLOADS)
def test_output_matches_drf(data):
    assert FastJSONRenderer().render(data) == JSONRenderer().render(data)


def test_indented_output_goes_through_drf():
    data = {"a": [1, 2]}
    media = "application/json; indent=2"
    expected = b'{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert FastJSONRenderer().render(data, media) == JSONRenderer().render(data, media) == expected


def test_no_data_is_an_empty_body_and_unknown_types_still_fail():
    assert FastJSONRenderer().render(None) == b""
    with pytest.raises(TypeError):
        FastJSONRenderer().render({"x": object()})
