"""Journey 3: empty and error states. A search that matches nothing explains why; a wrong form value shows its
message beside the field (whether the form, the service or the engine found it)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from broker.query.language import unknown_field_message
from tests.portal.conftest import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_offer_search_that_matches_nothing_explains_each_condition(page, url, portal_data, shot):
    from marketplace.models import Offer

    h100 = Offer.objects.filter(status="listed", accelerator__canonical_name="NVIDIA H100-SXM5-80GB")
    cheap = Offer.objects.filter(status="listed", price_per_hour__lte="0.5")
    assert h100.exists() and cheap.exists() and not h100.filter(price_per_hour__lte="0.5").exists()
    cheapest_h100 = min(h100.values_list("price_per_hour", flat=True))

    page.goto(url("/offers/"))
    expect(page.locator("#offer-table tbody tr")).to_have_count(25)  # first page of the demo marketplace
    page.get_by_label("Query").fill("accelerator=H100 price_per_hour<=0.5")
    page.get_by_role("button", name="Search").click()

    empty = page.locator("#search-empty")
    expect(empty).to_be_visible()
    total = Offer.objects.filter(status="listed").count()
    expect(empty).to_contain_text(f"Of the {total} listed offers, none meets every condition together.")
    reasons = page.locator("#empty-reasons li")
    expect(reasons).to_have_count(2)
    # Most helpful first: dropping the price cap finds every H100 offer; dropping the accelerator every cheap one.
    by_count = sorted([("price_per_hour<=0.5", h100.count()), ("accelerator", cheap.count())], key=lambda x: -x[1])
    first_clause = by_count[0][0]
    expect(reasons.nth(0)).to_contain_text(first_clause)
    expect(page.locator("#empty-reasons")).to_contain_text(
        f"without it, {h100.count()} offers would match; the lowest price_per_hour among them is "
        f"{cheapest_h100.normalize():f}")
    expect(page.locator("#empty-reasons")).to_contain_text(f"without it, {cheap.count()} offers would match")
    assert "q=accelerator%3DH100" in page.url or "q=accelerator=H100" in page.url  # the search is linkable
    shot(page, "offers-empty")


def test_bad_query_shows_the_parser_message_beside_the_query_field(page, url, portal_data, shot):
    page.goto(url("/offers/"))
    page.get_by_label("Query").fill("bogus>=3")
    page.get_by_role("button", name="Search").click()
    message = unknown_field_message("bogus")
    expect(page.locator("#err-q")).to_have_text(message)
    expect(page.get_by_label("Query")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#search-errors")).to_contain_text("The search could not run.")
    # Fixing it clears the message and brings results back, without a page reload.
    page.get_by_label("Query").fill("count>=8")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#err-q")).to_have_text("")
    expect(page.locator("#offer-table")).to_be_visible()
    expect(page.get_by_label("Query")).not_to_have_attribute("aria-invalid", "true")
    shot(page, "offers-fixed")


def test_wrong_values_show_messages_beside_their_fields(page, url, portal_data, shot):
    page.goto(url("/recommend/?template=serve"))
    expect(page.locator("#recommendations")).to_be_visible()
    # A range error the form finds.
    page.get_by_label("Concurrent requests").fill("0")
    page.get_by_role("button", name="Update results").click()
    expect(page.locator("#err-concurrent_sequences")).to_have_text(
        "Ensure this value is greater than or equal to 1.")
    expect(page.locator("#recommend-errors")).to_be_visible()
    # A meaning error only the engine knows: the model's context window.
    page.get_by_label("Concurrent requests").fill("16")
    page.get_by_label("Context length (tokens)").fill("1000000")
    page.get_by_role("button", name="Update results").click()
    expect(page.locator("#err-context_length")).to_have_text("Llama 3.1 70B supports at most 131072 tokens")
    expect(page.locator("#err-concurrent_sequences")).to_have_text("")
    shot(page, "recommend-field-error")

    # The sign-up form: a taken username and a too-short password, each beside its field; nothing created.
    from marketplace.models import User

    before = User.objects.count()
    page.goto(url("/signup/"))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Email").fill("someone@example.com")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#err-password")).to_contain_text(
        "This password is too short. It must contain at least 8 characters.")
    page.get_by_label("Password").fill("a-long-enough-password-1")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#err-username")).to_have_text("this username is taken")
    assert User.objects.count() == before
    shot(page, "signup-errors")


def test_recommendation_that_fits_nothing_explains_and_suggests(page, url, portal_data, shot):
    sign_in(page, url, "alice", "demo-pass-123")
    page.goto(url("/recommend/?template=gpus"))
    page.get_by_label("Accelerator(s)").fill("H100")
    page.locator("summary", has_text="Priorities and limits").click()
    page.get_by_label("Max. price per hour, all nodes (USD)").fill("1")
    page.get_by_role("button", name="Update results").click()
    expect(page.locator("#recommend-empty")).to_be_visible()
    # What the page shows is the engine's own explanation of the same request.
    from marketplace.portal.recommendations import recommend_preview

    answer = recommend_preview({"resources": {"accelerator": ["H100"], "count": 8, "nodes": 1},
                                "duration_hours": 24.0, "objective": "cost", "max_price_per_hour": "1",
                                "top_k": 20})
    assert answer["recommendations"] == []
    rows = page.locator("#excluded-histogram li")
    expect(rows).to_have_count(len(answer["excluded"]["by_reason"]))
    by_count = sorted(answer["excluded"]["by_reason"], key=lambda r: -r["count"])  # most common first
    for i, reason in enumerate(by_count):
        expect(rows.nth(i)).to_contain_text(reason["description"])
        expect(rows.nth(i).locator(".num")).to_have_text(str(reason["count"]))
    price = next(r for r in answer["excluded"]["by_reason"] if r["code"] == "max_price_per_hour")
    assert price["count"] > 0
    relax = page.locator("#relaxations li")
    expect(relax).to_have_count(len(answer["relaxations"]))
    expect(relax.first).to_contain_text(answer["relaxations"][0]["change"].capitalize()[:1]
                                        + answer["relaxations"][0]["change"][1:])
    shot(page, "recommend-empty")
