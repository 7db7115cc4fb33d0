"""The product's URLs plus /bench/bare/offers/: the floor that the offer search is compared with.

The bare view runs the very SQL that the search endpoint issued for the benchmark query (captured by
bench/search_bench.py and passed in BENCH_BARE_SQL), on a plain cursor: no authentication, no query
parsing, no pagination, no model instances, no serializer; the rows go out through DRF's JSON renderer.
It runs the SQL on the cursor the search runs its page query on (`prepared_cursor`: a prepared statement on
PostgreSQL), so neither endpoint plans the query per request and the floor is not raised by planning.
The difference between the two endpoints is therefore only what the API layer adds. Only
bench/settings.py loads this module.
"""

from __future__ import annotations

import json
import os

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from broker.urls import urlpatterns as product_urlpatterns
from marketplace.db_prepared import prepared_cursor

BARE_SQL: list[str] = json.loads(os.environ.get("BENCH_BARE_SQL") or "[]")


class BareOfferView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        columns: list[str] = []
        rows: list[tuple] = []
        with prepared_cursor() as cursor:
            for sql in BARE_SQL:
                cursor.execute(sql)
                columns = [c[0] for c in cursor.description]
                rows = cursor.fetchall()
        return Response({"columns": columns, "rows": rows})


urlpatterns = [
    path("bench/bare/offers/", BareOfferView.as_view()),
    *product_urlpatterns,
]
