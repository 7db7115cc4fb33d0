"""The API's content negotiation chooses what DRF's default negotiation chooses, Accept header or none."""

from __future__ import annotations

import pytest
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer, TemplateHTMLRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from marketplace.api.negotiation import ContentNegotiation
from marketplace.api.renderers import FastJSONRenderer

RENDERER_LISTS = [
    [FastJSONRenderer(), BrowsableAPIRenderer()],
    [BrowsableAPIRenderer(), FastJSONRenderer()],
    [TemplateHTMLRenderer(), JSONRenderer()],
]
ACCEPTS = [None, "*/*", "application/json", "text/html", "text/html;q=0.9, application/json", "application/*",
           "*/*; indent=4", "text/*"]


@pytest.mark.parametrize("renderers", RENDERER_LISTS, ids=lambda r: type(r[0]).__name__)
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "format=json", "format=api"])
def test_chooses_as_drf(renderers, accept, query):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(f"/api/v1/offers/?{query}", **headers))

    def choose(negotiation):
        try:
            renderer, media_type = negotiation.select_renderer(request, renderers)
        except Exception as exc:  # noqa: BLE001 - both must refuse alike (406, 404 for an unknown format)
            return type(exc).__name__
        return type(renderer).__name__, media_type

    assert choose(ContentNegotiation()) == choose(DefaultContentNegotiation())


def test_no_preference_takes_the_short_path(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("parsed the Accept header")

    monkeypatch.setattr(DefaultContentNegotiation, "select_renderer", refuse)
    request = Request(APIRequestFactory().get("/api/v1/offers/", HTTP_ACCEPT="*/*"))
    assert ContentNegotiation().select_renderer(request, RENDERER_LISTS[0]) == (RENDERER_LISTS[0][0],
                                                                                "application/json")
