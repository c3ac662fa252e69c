"""The password policy's rules, one at a time."""

from __future__ import annotations

import pytest

from chatter.services.password_policy import COMMON_PASSWORDS, PasswordPolicy, WeakPassword

POLICY = PasswordPolicy(min_length=10)
EMAIL = "Grace.Hopper@example.com"


def rule_broken(password: str, email: str = EMAIL) -> str | None:
    try:
        POLICY.check(password, email=email)
    except WeakPassword as refused:
        failure = refused
    else:
        return None
    assert (failure.status_code, failure.code) == (422, "weak_password")
    assert password not in failure.message
    rule: str = failure.details["rule"]
    return rule


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("correct horse battery", None),
        ("tr0ub4dor&3x", None),
        ("PASSWORD123", "common"),
        ("pass word 123", "common"),
        ("qwertyuiop", "common"),
        ("grace.hopper@example.com", "contains_email"),
        ("my grace.hopper secret", "contains_email"),
        ("short1!", "min_length"),
        ("123456789", "common"),
        ("abcdefghi", "min_length"),
    ],
)
def test_rules(password: str, rule: str | None) -> None:
    assert rule_broken(password) == rule


def test_a_short_name_part_does_not_refuse_half_the_dictionary() -> None:
    assert rule_broken("a long passphrase here", email="al@example.com") is None
    assert rule_broken("al@example.com and more", email="al@example.com") == "contains_email"


def test_the_common_list_is_lower_case_and_small() -> None:
    assert all(word == word.lower() for word in COMMON_PASSWORDS)
    assert 20 < len(COMMON_PASSWORDS) < 1000
