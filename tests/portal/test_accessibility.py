"""Accessibility and layout checks on every main page, in the real browser: labelled controls, unique ids, one h1,
text contrast (WCAG AA, computed from the rendered colours), keyboard skip link, and no sideways scrolling on a
phone-sized screen (wide tables scroll inside their own box)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.portal.conftest import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PUBLIC = ["/", "/signin/", "/signup/", "/offers/", "/offers/?q=accelerator=H100+price_per_hour<=0.1",
          "/recommend/", "/recommend/?template=finetune", "/recommend/?template=train", "/recommend/?template=hpc",
          "/recommend/?template=gpus"]
CUSTOMER = ["/orders/", "/billing/", "/account/tokens/"]
PROVIDER = ["/provider/", "/provider/offers/", "/provider/offers/new/", "/provider/upload/",
            "/provider/organisation/"]

AUDIT = (Path(__file__).parent / "audit.js").read_text()

OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def _audit(page, url, paths, shot, label):
    for path in paths:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(url(path))
        page.wait_for_load_state("networkidle")
        assert page.evaluate(AUDIT) == [], path
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_timeout(100)
        assert page.evaluate(OVERFLOW) <= 0, f"{path} scrolls sideways on a phone"
    shot(page, f"{label}-phone")


def test_public_pages(page, url, portal_data, shot):
    _audit(page, url, PUBLIC, shot, "public")


def test_customer_pages(page, url, portal_data, shot):
    sign_in(page, url, "alice", "demo-pass-123")
    _audit(page, url, CUSTOMER, shot, "customer")


def test_provider_pages(page, url, portal_data, shot):
    sign_in(page, url, "bob", "demo-pass-123")
    _audit(page, url, PROVIDER, shot, "provider")


def test_keyboard_skip_link_and_form(page, url, portal_data):
    page.goto(url("/recommend/?template=gpus"))
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    # The form is usable from the keyboard: tab into the first field, type, and the results follow.
    page.get_by_label("Accelerator(s)").focus()
    page.keyboard.press("Control+a")
    page.keyboard.type("MI300X")
    page.keyboard.press("Tab")
    expect(page.locator("#recommendations tr.rec").first).to_contain_text("MI300X")
