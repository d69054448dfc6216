"""Validation messages in our words (api/messages.py), and the fallback to the original."""

from __future__ import annotations

import pytest

from apiclub.api.messages import explain, explain_all


@pytest.mark.parametrize(
    ("message", "key", "ours"),
    [
        ("Expected `str`, got `int`", "name", "`name` must be a string, not a whole number"),
        (
            "Expected `int | null`, got `str`",
            "after_id",
            "`after_id` must be a whole number, not a string",
        ),
        ("Expected `str` of length >= 1", "name", "`name` must be at least 1 character long"),
        ("Expected `str` of length <= 200", "name", "`name` must be at most 200 characters long"),
        ("Expected `int` >= 1", "page", "`page` must be a whole number at least 1"),
        (
            "Object missing required field `name`",
            "data",
            'missing required field `name`: send a JSON object like {"name": "Write the tests"}',
        ),
        (
            "Expected `str` matching regex '^[^\\\\x00]*$'",
            "name",
            "`name` must not contain a NUL character (U+0000)",
        ),
    ],
)
def test_known_messages_are_reworded(message: str, key: str, ours: str) -> None:
    assert explain(message, key) == ours


@pytest.mark.parametrize(
    "message",
    [
        "Invalid UTF-8 encoded string",  # a rewording we do not know yet
        "Expected `str` matching regex '^a+$'",  # a pattern that is not ours
        "Expected `str`, got `int` - at `$.name`",  # not the whole message
    ],
)
def test_unknown_messages_pass_unchanged(message: str) -> None:
    assert explain(message, "name") == message


def test_explain_all_leaves_what_is_not_a_problem_list_alone() -> None:
    assert explain_all(None) is None
    assert explain_all({"max_body_size": 5}) == {"max_body_size": 5}
    assert explain_all([{"key": "data", "message": "'data'", "source": "body"}]) == [
        {
            "key": "data",
            "message": 'request body is empty: send a JSON object like {"name": "Write the tests"}',
            "source": "body",
        }
    ]
