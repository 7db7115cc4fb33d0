"""Forms of the portal (except the recommendation form: recommend_form.py).

Forms check types and ranges; the services check everything else. `apply_domain_error` puts a service's field
errors back on the form, so every message shows beside its field whichever layer found it.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm

from broker.query.language import FIELDS, SORTABLE_FIELDS
from marketplace.errors import DomainError
from marketplace.models.accounts import Role
from marketplace.models.offers import MAX_ACCELERATORS_PER_NODE, MAX_PRICE_PER_HOUR, Interconnect, InterNode
from marketplace.models.providers import WORKLOAD_KINDS

MONEY = {"max_digits": 12, "decimal_places": 4, "min_value": Decimal(0), "max_value": MAX_PRICE_PER_HOUR}


def apply_domain_error(form: forms.Form, exc: DomainError, *, aliases: dict[str, str] | None = None) -> None:
    """Attach a service's field errors to the form's fields (unknown names become form-wide errors)."""
    aliases = aliases or {}
    if not exc.fields:
        form.add_error(None, exc.message)
        return
    for name, messages in exc.fields.items():
        field = aliases.get(name, name)
        for message in messages if isinstance(messages, list) else [str(messages)]:
            if field in form.fields:
                if field not in form.errors or message not in form.errors[field]:
                    form.add_error(field, message)
            else:
                form.add_error(None, f"{name}: {message}")


# ------------------------------------------------------------------------------------------ accounts
class SignInForm(AuthenticationForm):
    username = forms.CharField(label="Username", max_length=150,
                               widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}))
    password = forms.CharField(label="Password", strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class SignUpForm(forms.Form):
    username = forms.RegexField(
        label="Username", max_length=150, regex=r"^[\w.@+-]+\Z",
        error_messages={"invalid": "Use letters, digits and @ . + - _ only."},
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}))
    email = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(label="Password", strip=False, help_text="At least 8 characters, not a common one.",
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    role = forms.ChoiceField(label="I want to", widget=forms.RadioSelect, initial=Role.CUSTOMER, choices=[
        (Role.CUSTOMER, "rent compute (customer)"), (Role.PROVIDER, "list capacity (provider)")])
    organisation = forms.CharField(label="Organisation (providers)", max_length=120, required=False,
                                   help_text="The provider you list capacity for; it starts unverified.")

    def clean(self):
        data = super().clean()
        if data.get("role") == Role.PROVIDER and not (data.get("organisation") or "").strip():
            self.add_error("organisation", "A provider account needs the organisation's name.")
        password = data.get("password")
        if password:
            try:
                password_validation.validate_password(password)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return data


class TokenForm(forms.Form):
    name = forms.CharField(label="Token name", max_length=100, help_text="What it is for, e.g. “ci” or “laptop”.")


# ------------------------------------------------------------------------------------- offer browser
def _choices(field: str) -> list[tuple[str, str]]:
    return [("", "any"), *((c, c) for c in FIELDS[field].choices)]


class OfferFilterForm(forms.Form):
    """The offer browser's filters; names match the search API's parameters (OfferSearchFilter)."""

    q = forms.CharField(label="Query", required=False,  # its length limit is the parser's (QUERY_MAX_LENGTH)
                        help_text="e.g. accelerator=H100 count>=8 price_per_hour<=30 region in [us-east,eu-finland]")
    accelerator = forms.CharField(label="Accelerator", required=False, max_length=120)
    vendor = forms.ChoiceField(label="Vendor", required=False, choices=_choices("vendor"))
    min_count = forms.IntegerField(label="Min. per node", required=False, min_value=1,
                                   max_value=MAX_ACCELERATORS_PER_NODE)
    max_price_per_hour = forms.DecimalField(label="Max. $ per node-hour", required=False, min_value=Decimal(0),
                                            max_digits=12, decimal_places=4)
    region = forms.CharField(label="Region", required=False, max_length=80)
    country = forms.CharField(label="Country", required=False, max_length=2)
    interconnect = forms.ChoiceField(label="Interconnect", required=False, choices=_choices("interconnect"))
    ordering = forms.ChoiceField(required=False, choices=[(f, f) for f in SORTABLE_FIELDS]
                                 + [(f"-{f}", f"-{f}") for f in SORTABLE_FIELDS], widget=forms.HiddenInput)
    cursor = forms.CharField(required=False, widget=forms.HiddenInput)

    FILTERS = ("accelerator", "vendor", "min_count", "max_price_per_hour", "region", "country", "interconnect")


# -------------------------------------------------------------------------------------------- provider
class OfferForm(forms.Form):
    """List one node type (the capacity form). Names are the offer API's, so service errors map 1:1."""

    name = forms.CharField(label="Node type name", max_length=200, help_text="e.g. gpu-8x-h100")
    external_id = forms.CharField(label="Your id", max_length=200, required=False,
                                  help_text="Optional; CSV uploads match rows to offers by it.")
    accelerator = forms.CharField(label="Accelerator", max_length=120, help_text="Any common name: H100, MI300X…")
    count = forms.IntegerField(label="Accelerators per node", min_value=1, max_value=MAX_ACCELERATORS_PER_NODE,
                               initial=8)
    memory_gb = forms.FloatField(label="Memory per accelerator (GB)", required=False, min_value=0.001,
                                 help_text="Leave empty for the catalog's figure.")
    vcpus = forms.IntegerField(label="vCPUs per node", min_value=0, required=False)
    ram_gb = forms.FloatField(label="RAM per node (GB)", min_value=0, required=False)
    disk_gb = forms.FloatField(label="Disk per node (GB)", min_value=0, required=False)
    interconnect = forms.ChoiceField(label="Interconnect in the node", choices=Interconnect.choices,
                                     initial=Interconnect.PCIE)
    inter_node = forms.ChoiceField(label="Between nodes", choices=InterNode.choices, initial=InterNode.NONE)
    region = forms.CharField(label="Region", max_length=80, help_text="Region key, e.g. eu-finland.")
    price_per_hour = forms.DecimalField(label="Price per node-hour (USD)", **MONEY)
    interruptible_price_per_hour = forms.DecimalField(label="Interruptible price (USD)", required=False, **MONEY)
    nodes_available = forms.IntegerField(label="Nodes available", min_value=0, initial=1)
    min_rental_hours = forms.DecimalField(label="Minimum rental (hours)", min_value=Decimal(0),
                                          max_value=Decimal(8784), decimal_places=2, required=False)
    available_until = forms.DateTimeField(label="Available until (UTC)", required=False,
                                          widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    status = forms.ChoiceField(label="Status", choices=[("listed", "Listed now"), ("draft", "Draft")],
                               initial="listed")

    def offer_data(self) -> dict:
        """The cleaned values under the API's names, without empty optional ones."""
        return {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}


class OfferEditForm(forms.Form):
    """Change price and availability of one of your offers (the offers table's inline form)."""

    price_per_hour = forms.DecimalField(label="Price per node-hour (USD)", **MONEY)
    interruptible_price_per_hour = forms.DecimalField(label="Interruptible price (USD)", required=False, **MONEY)
    nodes_available = forms.IntegerField(label="Nodes available", min_value=0)
    available_until = forms.DateTimeField(label="Available until (UTC)", required=False,
                                          widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def offer_data(self) -> dict:
        return dict(self.cleaned_data)


class CsvUploadForm(forms.Form):
    file = forms.FileField(label="CSV file of machines",
                           help_text="A header row of field names, then one node type per row (max. 1000 rows).")
    list_new = forms.BooleanField(label="List new rows right away (rows without a status column value)",
                                  required=False, initial=True)

    def clean_file(self):
        """Refuse a file over CSV_MAX_BYTES from its size, before reading it."""
        upload = self.cleaned_data["file"]
        if upload.size > settings.CSV_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size:,} bytes; the limit is {settings.CSV_MAX_BYTES:,}.", code="too_large")
        return upload


class PolicyForm(forms.Form):
    min_rental_hours = forms.DecimalField(label="Minimum rental (hours)", min_value=Decimal(0),
                                          max_value=Decimal(8784), decimal_places=2)
    allowed_workload_kinds = forms.MultipleChoiceField(
        label="Workloads you accept", widget=forms.CheckboxSelectMultiple,
        choices=[(k, k.replace("_", " ")) for k in WORKLOAD_KINDS],
        error_messages={"required": "Accept at least one kind of workload."})
    interruptible_allowed = forms.BooleanField(label="Allow interruptible (spot) use", required=False)


# ---------------------------------------------------------------------------------------------- orders
TEST_CARDS = [("pm_card_visa", "Visa •••• 4242 (succeeds)"), ("pm_card_mastercard", "Mastercard •••• 4444 (succeeds)"),
              ("pm_card_chargeDeclined", "Visa •••• 0002 (declined)"),
              ("pm_card_chargeDeclinedInsufficientFunds", "Visa •••• 9995 (insufficient funds)")]


class OrderForm(forms.Form):
    """The job of an order. Checked again by the orders API's JobSerializer, so both accept the same jobs."""

    command = forms.CharField(label="Command", required=False, max_length=10_000,
                              widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
                              help_text="The shell command to run, e.g. python serve.py --model llama-3.1-70b")
    image = forms.CharField(label="Container image", required=False, max_length=300,
                            help_text="Optional, for providers that run images.")
    env = forms.CharField(label="Environment", required=False, max_length=100_000,
                          widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
                          help_text="One NAME=value per line.")
    duration_hours = forms.DecimalField(label="Run for at most (hours)", min_value=Decimal("0.01"),
                                        max_value=Decimal(720), decimal_places=2)
    budget_cap_usd = forms.DecimalField(label="Stop when the cost reaches (USD)", required=False,
                                        min_value=Decimal("0.01"), max_digits=12, decimal_places=2,
                                        help_text="Optional budget cap; the job is stopped when metering reaches it.")
    method = forms.ChoiceField(label="Pay with", widget=forms.RadioSelect, initial="card",
                               choices=[("card", "Card (the most it can cost is held; you pay for what runs)"),
                                        ("credit", "Prepaid credit")])
    card = forms.ChoiceField(label="Test card", required=False, initial="pm_card_visa",
                             choices=[("", "my saved card"), *TEST_CARDS])
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=200)

    def clean(self):
        data = super().clean()
        if data.get("method") == "card" and not data.get("card") and not self.initial.get("saved_card"):
            self.add_error("card", "Choose a test card (no card is saved yet).")
        return data

    def clean_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data.get("env", "").splitlines(), start=1):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep:
                raise forms.ValidationError(f"Line {number} is not NAME=value.")
            env[name.strip()] = value
        return env


class TopUpForm(forms.Form):
    amount = forms.DecimalField(label="Amount (USD)", min_value=Decimal("1.00"), max_value=Decimal("10000.00"),
                                decimal_places=2, initial=Decimal("50.00"))
    payment_method = forms.ChoiceField(label="Test card", choices=TEST_CARDS)


class CardForm(forms.Form):
    payment_method = forms.ChoiceField(label="Card for orders (test mode)", choices=TEST_CARDS)


class OfferOrderForm(forms.Form):
    """Order one offer directly from the offer browser: how many nodes, for how long."""

    nodes = forms.IntegerField(label="Nodes", min_value=1, max_value=1024, initial=1)
    duration_hours = forms.DecimalField(label="For how long (hours)", min_value=Decimal("0.01"),
                                        max_value=Decimal(720), decimal_places=2, initial=Decimal(1))
