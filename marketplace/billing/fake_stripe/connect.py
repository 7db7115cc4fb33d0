"""Connect: Express accounts, onboarding links, transfers with reversals, and payouts on connected accounts."""

from __future__ import annotations

from urllib.parse import quote

from marketplace.billing.fake_stripe.forms import FormError, as_int
from marketplace.billing.fake_stripe.state import BaseState, FakeStripeError, invalid

ONBOARDING_DUE = ["business_profile.url", "external_account", "individual.dob.day", "individual.first_name",
                  "tos_acceptance.date"]


class ConnectMixin(BaseState):
    def accounts_create(self, params: dict, account: str | None) -> dict:
        self.only(params, {"type", "country", "email", "capabilities", "business_type", "metadata",
                           "business_profile", "controller"})
        kind = params.get("type", "express" if "controller" not in params else "none")
        if kind not in ("express", "standard", "custom", "none"):
            raise invalid("Invalid type: must be one of custom, express, or standard", param="type")
        return self.put("accounts", {
            "id": self.new_id("acct"), "object": "account", "created": self.now(), "type": kind,
            "country": params.get("country", "US"), "email": params.get("email"), "default_currency": "usd",
            "charges_enabled": False, "payouts_enabled": False, "details_submitted": False,
            "capabilities": {"transfers": "inactive", "card_payments": "inactive"},
            "requirements": {"currently_due": list(ONBOARDING_DUE), "eventually_due": list(ONBOARDING_DUE),
                             "past_due": [], "disabled_reason": "requirements.past_due"},
            "metadata": self.metadata(params),
        })

    def accounts_retrieve(self, ident: str, account: str | None) -> dict:
        return self.get("accounts", ident, "account", param="account")

    def account_links_create(self, params: dict, account: str | None) -> dict:
        self.only(params, {"account", "refresh_url", "return_url", "type", "collect", "collection_options"})
        for name in ("account", "type"):
            if not params.get(name):
                raise invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
        acct = self.get("accounts", params["account"], "account", param="account")
        if params["type"] not in ("account_onboarding", "account_update"):
            raise invalid(f"Invalid type: {params['type']}", param="type")
        if not params.get("return_url") or not params.get("refresh_url"):
            missing = "return_url" if not params.get("return_url") else "refresh_url"
            raise invalid(f"Missing required param: {missing}.", param=missing, code="parameter_missing")
        return {"object": "account_link", "created": self.now(), "expires_at": self.now() + 300,
                "url": f"{self.base_url}/_fake/onboarding/{acct['id']}?return_url={quote(params['return_url'])}"}

    def accounts_onboard(self, ident: str, *, charges_enabled: bool = True, payouts_enabled: bool = True) -> dict:
        """Test helper: the account holder finished (or lost) onboarding; Stripe sends account.updated."""
        acct = self.accounts_retrieve(ident, None)
        previous = {k: acct[k] for k in ("charges_enabled", "payouts_enabled", "details_submitted")}
        due = [] if charges_enabled and payouts_enabled else list(ONBOARDING_DUE[:1])
        acct.update(charges_enabled=charges_enabled, payouts_enabled=payouts_enabled, details_submitted=True,
                    capabilities={"transfers": "active" if charges_enabled else "inactive",
                                  "card_payments": "active" if charges_enabled else "inactive"},
                    requirements={"currently_due": due, "eventually_due": due, "past_due": [],
                                  "disabled_reason": None if not due else "requirements.past_due"})
        self.emit("account.updated", acct, account=acct["id"], previous=previous)
        return acct

    # -- transfers -------------------------------------------------------------------------------
    def transfers_create(self, params: dict, account: str | None) -> dict:
        self.only(params, {"amount", "currency", "destination", "transfer_group", "metadata", "description",
                           "source_transaction"})
        currency = self.currency(params)
        try:
            amount = as_int(params, "amount", required=True, minimum=1)
        except FormError as exc:
            raise invalid(str(exc), param="amount", code="parameter_missing") from None
        if not params.get("destination"):
            raise invalid("Missing required param: destination.", param="destination", code="parameter_missing")
        dest = self.table("accounts").get(params["destination"])
        if dest is None:
            raise FakeStripeError(400, f"No such destination: '{params['destination']}'", code="resource_missing",
                                  param="destination")
        if dest["capabilities"].get("transfers") != "active":
            raise FakeStripeError(
                400, "Your destination account needs to have at least one of the following capabilities enabled: "
                     "transfers, crypto_transfers, legacy_payments", code="insufficient_capabilities_for_transfer",
                param="destination")
        transfer = self.put("transfers", {
            "id": self.new_id("tr"), "object": "transfer", "created": self.now(), "amount": amount,
            "amount_reversed": 0, "currency": currency, "destination": dest["id"], "reversed": False,
            "description": params.get("description"), "transfer_group": params.get("transfer_group"),
            "source_transaction": params.get("source_transaction"), "metadata": self.metadata(params),
            "reversals": {"object": "list", "data": [], "has_more": False, "total_count": 0},
        })
        self.emit("transfer.created", transfer)
        return transfer

    def transfers_retrieve(self, ident: str, account: str | None) -> dict:
        return self.get("transfers", ident, "transfer")

    def transfer_reversals_create(self, ident: str, params: dict, account: str | None) -> dict:
        self.only(params, {"amount", "metadata", "description", "refund_application_fee"})
        transfer = self.transfers_retrieve(ident, account)
        remaining = transfer["amount"] - transfer["amount_reversed"]
        try:
            amount = as_int(params, "amount", minimum=1)
        except FormError as exc:
            raise invalid(str(exc), param="amount") from None
        amount = remaining if amount is None else amount
        if amount > remaining:
            raise FakeStripeError(400, f"Reversal amount ({amount}) is greater than the amount that can be reversed "
                                       f"({remaining}).", code="amount_too_large", param="amount")
        reversal = {"id": self.new_id("trr"), "object": "transfer_reversal", "created": self.now(),
                    "amount": amount, "currency": transfer["currency"], "transfer": transfer["id"],
                    "metadata": self.metadata(params)}
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        transfer["reversals"]["data"].append(reversal)
        transfer["reversals"]["total_count"] += 1
        self.emit("transfer.reversed", transfer)
        return reversal

    # -- payouts (on connected accounts) ---------------------------------------------------------
    def payouts_retrieve(self, ident: str, account: str | None) -> dict:
        payout = self.get("payouts", ident, "payout")
        if payout["_account"] != account:
            raise FakeStripeError(404, f"No such payout: '{ident}'", code="resource_missing", param="id", saved=False)
        return {k: v for k, v in payout.items() if not k.startswith("_")}

    def payouts_fail(self, account_id: str, amount: int, failure_code: str = "account_closed") -> dict:
        """Test helper: the connected account's bank payout bounced; Stripe sends payout.failed (Connect)."""
        self.accounts_retrieve(account_id, None)
        payout = self.put("payouts", {
            "id": self.new_id("po"), "object": "payout", "created": self.now(), "amount": amount, "currency": "usd",
            "status": "failed", "failure_code": failure_code,
            "failure_message": "The bank account has been closed.", "arrival_date": self.now(), "_account": account_id,
        })
        public = {k: v for k, v in payout.items() if not k.startswith("_")}
        self.emit("payout.failed", public, account=account_id)
        return public
