"""What a generation cost: a price table per provider kind and model, applied to the usage it reported.

Prices are in US dollars (the currency every hosted provider here bills in). A price is a fixed
amount per image, an amount per million of a usage counter the provider reports, or both. Nested
usage counters are named by their path (`input_tokens_details.text_tokens`). A model without a
price costs nothing known (`cost` stays null), never a guess.

Defaults (list prices, checked November 2026; docs/providers.md names the sources) can be changed
or extended with `IMAGESTUDIO_PRICES`, JSON keyed by "kind/model":
`{"openai/gpt-image-1.5": {"per_million": {"output_tokens": "32"}}, "stability/upscale-fast": {"per_image": "0.02"}}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

CURRENCY = "USD"
MILLION = Decimal(1_000_000)
# Costs are stored with six decimal places (generations.cost is NUMERIC(12, 6)).
QUANTUM = Decimal("0.000001")


@dataclass(frozen=True)
class Price:
    per_image: Decimal | None = None
    per_million: Mapping[str, Decimal] = field(default_factory=dict)

    def cost(self, usage: Mapping[str, Any], images: int) -> Decimal | None:
        """What the usage costs; None when the price is by usage and the provider reported none of
        its counters (an answer without usage is not free, its cost is unknown)."""
        counters = flatten_usage(usage)
        if self.per_million and not any(counter in counters for counter in self.per_million):
            return None
        total = (self.per_image or Decimal(0)) * images
        for counter, rate in self.per_million.items():
            total += Decimal(counters.get(counter, 0)) * rate / MILLION
        return total.quantize(QUANTUM)

    @classmethod
    def parse(cls, key: str, value: object) -> Price:
        if not isinstance(value, Mapping) or not set(value) <= {"per_image", "per_million"}:
            raise ValueError(f"price {key!r} must be an object with per_image and/or per_million")
        per_million = value.get("per_million") or {}
        if not isinstance(per_million, Mapping):
            raise ValueError(f"price {key!r}: per_million must map usage counters to amounts")
        per_image = value.get("per_image")
        return cls(
            per_image=_amount(key, per_image) if per_image is not None else None,
            per_million={str(name): _amount(key, rate) for name, rate in per_million.items()},
        )


def _amount(key: str, value: object) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"price {key!r}: {value!r} is not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"price {key!r}: {value!r} is not an amount of zero or more")
    return amount


def flatten_usage(usage: Mapping[str, Any], prefix: str = "") -> dict[str, int]:
    """Integer counters of a usage object, nested ones named by their dotted path."""
    counters: dict[str, int] = {}
    for name, value in usage.items():
        path = f"{prefix}{name}"
        if isinstance(value, Mapping):
            counters.update(flatten_usage(value, f"{path}."))
        elif isinstance(value, int) and not isinstance(value, bool):
            counters[path] = value
    return counters


def _tokens(**rates: str) -> Price:
    return Price(per_million={name.replace("__", "."): Decimal(rate) for name, rate in rates.items()})


def _credits(credits: str) -> Price:
    # Stability bills in credits of one US cent each.
    return Price(per_image=Decimal(credits) / 100)


DEFAULT_PRICES: dict[str, Price] = {
    # OpenAI bills gpt-image tokens: text input, image input, image output (per million).
    "openai/gpt-image-1": _tokens(
        input_tokens_details__text_tokens="5", input_tokens_details__image_tokens="10", output_tokens="40"
    ),
    "openai/gpt-image-1-mini": _tokens(
        input_tokens_details__text_tokens="2", input_tokens_details__image_tokens="2.5", output_tokens="8"
    ),
    # Gemini bills prompt tokens and output tokens (an image is 1120 tokens at 1K/2K and 2000 at 4K
    # on 3 Pro Image).
    "gemini/gemini-3-pro-image": _tokens(promptTokenCount="2", candidatesTokenCount="120"),
    # Output image tokens only: the input rate was not settled when checked.
    "gemini/gemini-3.1-flash-image": _tokens(candidatesTokenCount="60"),
    "stability/stable-image-core": _credits("3"),
    "stability/stable-image-ultra": _credits("8"),
    "stability/sd3.5-large": _credits("6.5"),
    "stability/sd3.5-large-turbo": _credits("4"),
    "stability/sd3.5-medium": _credits("3.5"),
}


class PriceTable:
    def __init__(self, overrides: Mapping[str, object] | None = None) -> None:
        self._prices = dict(DEFAULT_PRICES)
        for key, value in (overrides or {}).items():
            if "/" not in key:
                raise ValueError(f"price key {key!r} must be provider-kind/model")
            self._prices[key] = Price.parse(key, value)

    def price(self, kind: str, model: str) -> Price | None:
        return self._prices.get(f"{kind}/{model}")

    def cost(self, kind: str, model: str, usage: Mapping[str, Any], images: int) -> Decimal | None:
        price = self.price(kind, model)
        return price.cost(usage, images) if price is not None else None
