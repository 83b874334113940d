"""Amounts of money as the API shows and takes them: decimal strings, never binary floats."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field

# Six decimal places, as the database keeps costs and budgets (NUMERIC(12, 6)).
AMOUNT_PATTERN = r"^[0-9]{1,6}(\.[0-9]{1,6})?$"
# An amount a request gives (a budget): a decimal string of up to 6 digits before the point and 6 after.
AmountText = Annotated[str, Field(pattern=AMOUNT_PATTERN, max_length=13, examples=["25", "12.50"])]


class Money(BaseModel):
    # A decimal string with six places ("0.051180").
    amount: Decimal
    currency: str


def money(amount: Decimal | None, currency: str) -> Money | None:
    return None if amount is None else Money(amount=amount, currency=currency)


def parse_amount(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)
