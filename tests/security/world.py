"""Two tenants of each kind with real objects, for the authorization matrix.

Customers A and B each have a quote, a paid order (with events, a log, a billing record), a top-up and API tokens;
provider organisations A and B each have a member, a listed and a draft offer, an agent with a secret, a payout
account and a transfer. Every object carries a marker string (or its id) that is unique to its tenant, so a test
can assert that no response ever shows one tenant's objects to another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

TENANTS = ("cust_a", "cust_b", "prov_a", "prov_b")


@dataclass
class World:
    users: dict[str, object] = field(default_factory=dict)        # principal -> User (no "anon")
    keys: dict[str, str] = field(default_factory=dict)            # principal -> API token key
    sessions: dict[str, str] = field(default_factory=dict)        # principal -> session key (portal)
    ids: dict[str, object] = field(default_factory=dict)          # "order_a", "draft_a", ... -> pk
    markers: dict[str, set[str]] = field(default_factory=dict)    # tenant -> strings only it may see
    never: set[str] = field(default_factory=set)                  # secrets no response may ever carry
    order_ids: dict[str, set[int]] = field(default_factory=dict)  # tenant -> order ids it may see


def _session(user) -> str:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return store.session_key


def build_world() -> World:
    from marketplace.agents.services import agent_enroll
    from marketplace.billing.models import OrderCharge, ProviderPayoutAccount, ProviderTransfer, TopUp
    from marketplace.billing.services.customers import billing_set_overdraft
    from marketplace.models import Accelerator, Offer, Provider, Quote, Region, User
    from marketplace.orders.models import OrderLogChunk
    from marketplace.orders.services.placement import JobInput, PaymentInput, PlacementInput, order_place
    from marketplace.services.tokens import token_create
    from tests.conftest import ensure_reference_data

    ensure_reference_data()
    region = Region.objects.get(key="us-east-virginia")
    h100 = Accelerator.objects.get(canonical_name="NVIDIA H100-SXM5-80GB")
    world = World()
    world.users["op"] = User.objects.create_user("sec-operator", password="pw-sec-operator-123", role="operator",
                                                 is_staff=True, is_superuser=True)
    now = timezone.now()
    for side in ("a", "b"):
        provider = Provider.objects.create(name=f"Sec Provider {side.upper()}", slug=f"sec-prov-{side}")
        member = User.objects.create_user(f"sec-member-{side}", password="pw-member-123", role="provider",
                                          provider=provider)
        customer = User.objects.create_user(f"sec-customer-{side}", password="pw-customer-123", role="customer")
        world.users[f"prov_{side}"], world.users[f"cust_{side}"] = member, customer
        billing_set_overdraft(operator=world.users["op"], customer=customer, limit=Decimal("100000.00"))
        common = dict(provider=provider, accelerator=h100, accelerator_count=8, accelerator_memory_gb=80, vcpus=96,
                      ram_gb=1024, disk_gb=2000, region=region, price_per_hour=Decimal("20.0000"), nodes_available=4)
        listed = Offer.objects.create(name=f"listed-{side}", external_id=f"listed-{side}", status="listed", **common)
        draft = Offer.objects.create(name=f"draft-secret-prov_{side}", external_id=f"ext-secret-prov_{side}",
                                     status="draft", **common)
        agent, agent_secret = agent_enroll(provider=provider, name=f"agent-prov-{side}")
        ProviderPayoutAccount.objects.create(provider=provider, stripe_account_id=f"acct_secret_prov_{side}",
                                                      payouts_enabled=True, charges_enabled=True)
        alternative = {"rank": 1, "offer_id": listed.pk, "provider": provider.slug, "accelerator": h100.canonical_name,
                       "count": 8, "nodes": 1, "region": region.key, "node_price_per_hour": "20.0000",
                       "price_per_hour": "20.0000", "est_hours": 1.0, "est_total_usd": "20.00"}
        quote = Quote.objects.create(user=customer, request={"resources": {"nodes": 1}}, objective="cost",
                                     alternatives=[alternative], created_at=now, expires_at=now + timedelta(hours=2))
        order, _ = order_place(user=customer, idempotency_key=f"sec-{side}", data=PlacementInput(
            job=JobInput(command=f"echo cmd-secret-cust_{side}", duration_hours=Decimal("1"),
                         env={"SECRET_ENV": f"env-secret-cust_{side}"}),
            quote_id=str(quote.pk), payment=PaymentInput(method="credit")))
        OrderLogChunk.objects.create(order=order, attempt=1, offset=0, text=f"log-secret-cust_{side}\n")
        charge = OrderCharge.objects.get(order=order)
        transfer = ProviderTransfer.objects.create(charge=charge, provider=provider, amount=Decimal("9.00"),
                                                   status="failed", stripe_transfer_id=f"tr_secret_prov_{side}")
        topup = TopUp.objects.create(customer=customer, amount=Decimal("50.00"),
                                     payment_intent_id=f"pi_secret_cust_{side}",
                                     client_secret=f"pi_secret_cust_{side}_secret_cs")
        target, target_key = token_create(user=customer, name=f"tok-secret-cust_{side}")
        member_token, member_key = token_create(user=member, name=f"tok-secret-prov_{side}")
        world.ids.update({f"order_{side}": order.pk, f"quote_{side}": str(quote.pk), f"listed_{side}": listed.pk,
                          f"draft_{side}": draft.pk, f"agent_{side}": agent.pk, f"topup_{side}": topup.pk,
                          f"transfer_{side}": transfer.pk, f"token_{side}": target.pk,
                          f"member_token_{side}": member_token.pk, f"customer_{side}": customer.pk})
        world.markers[f"cust_{side}"] = {f"cmd-secret-cust_{side}", f"env-secret-cust_{side}",
                                         f"log-secret-cust_{side}", str(quote.pk), f"pi_secret_cust_{side}",
                                         f"tok-secret-cust_{side}", customer.username}
        world.markers[f"prov_{side}"] = {f"draft-secret-prov_{side}", f"ext-secret-prov_{side}",
                                         f"acct_secret_prov_{side}", f"tr_secret_prov_{side}",
                                         f"agent-prov-{side}", f"tok-secret-prov_{side}", member.username}
        world.never |= {agent_secret, target_key, member_key}
        world.order_ids[f"cust_{side}"] = {order.pk}
        world.order_ids[f"prov_{side}"] = {order.pk}  # the sale on its own offer (transfers name the order)
    for principal, user in world.users.items():
        _, key = token_create(user=user, name="matrix")
        world.keys[principal] = key
        world.never.add(key)
        world.sessions[principal] = _session(user)
    return world
