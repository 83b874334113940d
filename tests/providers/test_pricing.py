"""The price table: arithmetic on reported usage, overrides from configuration, bad configuration."""

from __future__ import annotations

from decimal import Decimal

import pytest

from imagestudio.providers.pricing import Price, PriceTable, flatten_usage

OPENAI_USAGE = {
    "total_tokens": 1322,
    "input_tokens": 50,
    "output_tokens": 1272,
    "input_tokens_details": {"text_tokens": 40, "image_tokens": 10},
}


def test_nested_usage_counters_are_named_by_their_path() -> None:
    assert flatten_usage({**OPENAI_USAGE, "note": "x", "flag": True}) == {
        "total_tokens": 1322,
        "input_tokens": 50,
        "output_tokens": 1272,
        "input_tokens_details.text_tokens": 40,
        "input_tokens_details.image_tokens": 10,
    }


def test_token_prices_apply_per_million_of_each_counter() -> None:
    cost = PriceTable().cost("openai", "gpt-image-1", OPENAI_USAGE, images=1)
    # 40 x $5 + 10 x $10 + 1272 x $40, per million tokens.
    assert cost == Decimal("0.051180")


def test_per_image_and_token_prices_add_up_and_round_to_micro_dollars() -> None:
    price = Price(per_image=Decimal("0.01"), per_million={"output_tokens": Decimal("3")})
    assert price.cost({"output_tokens": 1}, images=3) == Decimal("0.030003")


def test_usage_prices_without_reported_usage_leave_the_cost_unknown() -> None:
    # A compatible server that answers without `usage`: not free, unknown.
    assert PriceTable().cost("openai", "gpt-image-1", {}, images=1) is None
    assert PriceTable().cost("gemini", "gemini-2.5-flash-image", {"other": 3}, images=1) is None
    # Per-image prices need no usage.
    assert PriceTable().cost("stability", "stable-image-core", {}, images=1) == Decimal("0.030000")


def test_a_model_without_a_price_has_no_cost() -> None:
    table = PriceTable()
    assert table.cost("openai", "gpt-image-2", OPENAI_USAGE, images=1) is None
    assert table.cost("a1111", "default", {}, images=4) is None


def test_configuration_adds_and_replaces_prices() -> None:
    table = PriceTable(
        {
            "openai/gpt-image-2": {"per_million": {"output_tokens": "30"}},
            "stability/stable-image-core": {"per_image": "0.05"},
        }
    )
    assert table.cost("openai", "gpt-image-2", OPENAI_USAGE, images=1) == Decimal("0.038160")
    assert table.cost("stability", "stable-image-core", {}, images=2) == Decimal("0.100000")
    # Others keep their defaults.
    assert table.cost("stability", "stable-image-ultra", {}, images=1) == Decimal("0.080000")


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"gpt-image-1": {"per_image": "1"}}, "kind/model"),
        ({"openai/x": {"per_imag": "1"}}, "per_image and/or per_million"),
        ({"openai/x": {"per_image": "lots"}}, "not an amount"),
        ({"openai/x": {"per_image": "-1"}}, "zero or more"),
        ({"openai/x": {"per_million": ["output_tokens"]}}, "map usage counters"),
        ({"openai/x": {"per_million": {"output_tokens": "NaN"}}}, "zero or more"),
    ],
)
def test_bad_price_configuration_is_refused_with_the_key(overrides, complaint: str) -> None:
    with pytest.raises(ValueError) as caught:
        PriceTable(overrides)
    assert complaint in str(caught.value)
