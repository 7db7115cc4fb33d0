"""The brokering engine: pure Python + NumPy over a columnar snapshot of listed offers (no Django here).

Entry points:
    snapshot = OfferSnapshot.from_rows(rows)            # rebuilt or .patch()ed when offers change
    request = parse_request(document, now=now)          # raises RequestError(fields)
    answer = recommend(snapshot, request, now=now)      # Recommendation; answer.to_json()
"""

from broker.engine.parse import parse_request
from broker.engine.recommend import recommend
from broker.engine.request import Request, RequestError
from broker.engine.result import Recommendation
from broker.engine.snapshot import OfferRow, OfferSnapshot
from broker.engine.specs import EngineSpecs, default_specs

__all__ = [
    "OfferRow",
    "OfferSnapshot",
    "Request",
    "RequestError",
    "Recommendation",
    "EngineSpecs",
    "default_specs",
    "parse_request",
    "recommend",
]
