from django import template

from ..domain import format_cents

register = template.Library()


@register.filter
def cents(value: int) -> str:
    """Show an amount in cents as ``12.50``."""
    return format_cents(value)
