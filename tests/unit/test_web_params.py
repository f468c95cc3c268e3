"""Query parameters of the HTTP API: what is accepted, and the 400 message otherwise."""

from __future__ import annotations

import pytest

from persona.web.base import BadRequest, int_param, text_param


class Query:
    def __init__(self, **query: str):
        self.query = query


@pytest.mark.parametrize("raw, value", [("5", 5), ("100", 100), ("1", 1), ("007", 7)])
def test_whole_numbers_in_range_are_taken(raw, value):
    assert int_param(Query(n=raw), "n", 10, 1, 100) == value


def test_a_missing_number_takes_the_default():
    assert int_param(Query(), "n", 10, 1, 100) == 10


@pytest.mark.parametrize("raw, reason", [
    ("0", "n must be between 1 and 100, got 0"), ("101", "n must be between 1 and 100, got 101"),
    ("-3", "n must be between 1 and 100, got -3"), ("9" * 5000, "n must be between 1 and 100, got 9999"),
    ("", "n must be a whole number, got ''"), ("5.0", "n must be a whole number"), (" 5", "n must be a whole number"),
    ("1_0", "n must be a whole number"), ("٣", "n must be a whole number"), ("+5", "n must be a whole number"),
])
def test_anything_else_gets_a_message(raw, reason):
    with pytest.raises(BadRequest) as err:
        int_param(Query(n=raw), "n", 10, 1, 100)
    assert str(err.value).startswith(reason)


def test_texts_have_1_to_64_characters():
    assert text_param(Query(slot="home"), "slot") == "home" and text_param(Query(), "slot") is None
    for raw in ("", "x" * 65):
        with pytest.raises(BadRequest, match="slot must have 1 to 64 characters"):
            text_param(Query(slot=raw), "slot")
