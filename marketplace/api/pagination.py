from django import forms
from django.conf import settings
from rest_framework import pagination
from rest_framework.exceptions import NotFound

from marketplace.errors import ValidationFailed


def page_size_from(raw: str | None, default: int) -> int:
    """`page_size` checked against API_MAX_PAGE_SIZE: over the limit (or not a positive integer) is a 400 on the
    parameter, not a silently shorter page."""
    if raw is None:
        return default
    field = forms.IntegerField(min_value=1, max_value=settings.API_MAX_PAGE_SIZE)
    try:
        return field.clean(raw)
    except forms.ValidationError as exc:
        raise ValidationFailed(f"page_size: {' '.join(exc.messages)}",
                               fields={"page_size": list(exc.messages)}) from None


class PageNumberPagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"

    @property
    def max_page_size(self) -> int:
        return settings.API_MAX_PAGE_SIZE

    def get_page_size(self, request) -> int:
        return page_size_from(request.query_params.get(self.page_size_query_param), self.page_size)

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound as exc:  # a page past the end, or not a number: the parameter is wrong
            message = str(exc.detail)
            raise ValidationFailed(f"page: {message}", fields={"page": [message]}) from None

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
                parameter["description"] = f"Results per page (default {self.page_size}, at most {self.max_page_size})."
        return parameters
