from typing import Any

from django import template

from ..domain import format_cents, is_account_id

register = template.Library()


@register.filter
def cents(value: Any) -> str:
    """Show an amount in cents as ``12.50``; anything else (from a history the bank did not write) as it is."""
    return format_cents(value) if type(value) is int else str(value)


@register.filter
def is_account(actor_id: str) -> bool:
    """Whether the actor is a bank account the pages can show (``account-<number>``)."""
    return is_account_id(actor_id)
