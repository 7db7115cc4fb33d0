"""Template helpers: accessible form rows, money and number formatting, query-string editing."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms, template
from django.http import QueryDict
from django.utils.html import format_html

register = template.Library()

GROUP_WIDGETS = (forms.RadioSelect, forms.CheckboxSelectMultiple)


@register.inclusion_tag("portal/_field.html")
def field_row(field: forms.BoundField, oob: bool = False, **attrs: Any) -> dict:
    """A labelled field with its help text and an error slot tied to it (aria-describedby, aria-invalid).

    The error slot `err-<name>` is always rendered (empty when valid), so htmx can refill it out of band.
    """
    described = []
    help_id = f"{field.auto_id}_helptext"
    error_id = f"err-{field.html_name}"
    if field.help_text:
        described.append(help_id)
    described.append(error_id)
    widget_attrs = {"aria-describedby": " ".join(described), **attrs}
    if field.errors:
        widget_attrs["aria-invalid"] = "true"
    group = isinstance(field.field.widget, GROUP_WIDGETS)
    checkbox = isinstance(field.field.widget, forms.CheckboxInput)
    return {"field": field, "widget": field.as_widget(attrs=widget_attrs), "help_id": help_id,
            "error_id": error_id, "group": group, "checkbox": checkbox}


@register.inclusion_tag("portal/_errors_oob.html")
def errors_oob(form: forms.Form, names: Any = None) -> dict:
    """Out-of-band swaps that set (or clear) the error slot of each visible field after an htmx request.

    Only fields the page renders may be listed (htmx reports an out-of-band target it cannot find as an error).
    """
    wanted = set(names) if names is not None else None
    return {"slots": [(f"err-{bf.html_name}", bf.errors) for bf in form
                      if not bf.is_hidden and (wanted is None or bf.name in wanted)]}


@register.filter
def usd(value: Any, places: int = 2) -> str:
    """'$1,234.50' from a Decimal or decimal string; '—' for nothing."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    q = Decimal(1).scaleb(-int(places))
    return f"${amount.quantize(q):,}"


@register.filter
def words(key: str) -> str:
    """'paid_by_card' -> 'Paid by card'."""
    return str(key).replace("_", " ").capitalize()


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    return mapping.get(key) if hasattr(mapping, "get") else None


@register.filter
def short_acc(name: str) -> str:
    """'NVIDIA H100-SXM5-80GB' -> 'H100-SXM5-80GB' (the vendor is implied by the model)."""
    return str(name).removeprefix("NVIDIA ").removeprefix("AMD Instinct ").removeprefix("AMD ")


@register.filter
def num(value: Any, places: int = 1) -> str:
    if value is None or value == "":
        return "—"
    try:
        return f"{float(value):,.{int(places)}f}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def seconds(value: Any) -> str:
    """A run time: '42 s', '12 min 5 s', '3 h 20 min'."""
    total = int(float(value or 0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


@register.filter
def percent(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.0f}%"


@register.simple_tag(takes_context=True)
def query_with(context: template.Context, **changes: Any) -> str:
    """The current query string with some parameters replaced (None or '' removes them)."""
    params: QueryDict = context["request"].GET.copy()
    for key, value in changes.items():
        params.pop(key, None)
        if value not in (None, ""):
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.simple_tag
def sort_link(label: str, field: str, current: str, url_query: str = "") -> str:
    """A column header link that sorts by `field`, toggling direction when it is already the sort."""
    active = current.lstrip("-") == field
    descending = current.startswith("-")
    target = f"-{field}" if active and not descending else field
    arrow = (" ▼" if descending else " ▲") if active else ""
    return format_html('<a href="?{}ordering={}">{}<span aria-hidden="true">{}</span></a>',
                       url_query, target, label, arrow)


@register.filter
def aria_sort(field: str, current: str) -> str:
    if current.lstrip("-") != field:
        return ""
    return format_html(' aria-sort="{}"', "descending" if current.startswith("-") else "ascending")
