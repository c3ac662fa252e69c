"""The password policy for new passwords (registration, password change, the CLI): long
enough, not the email, not one of the passwords every guessing list starts with.

Checked after the request's own shape (the schema's bounds); a refusal is a 422
`weak_password` naming the rule, never the password."""

from __future__ import annotations

from typing import NoReturn

from chatter.errors import Unprocessable

# The most common passwords of public breach corpora that survive any length rule people
# actually set (at least 8 characters); matched case-insensitively, whole password only.
COMMON_PASSWORDS = frozenset(
    {
        "password",
        "password1",
        "password12",
        "password123",
        "password1234",
        "passw0rd",
        "p@ssw0rd",
        "p@ssword",
        "12345678",
        "123456789",
        "1234567890",
        "12345678910",
        "0123456789",
        "87654321",
        "11111111",
        "00000000",
        "88888888",
        "qwertyuiop",
        "qwerty123",
        "qwerty1234",
        "1q2w3e4r",
        "1q2w3e4r5t",
        "1qaz2wsx",
        "zaq12wsx",
        "asdfghjkl",
        "asdfasdf",
        "iloveyou",
        "iloveyou1",
        "sunshine",
        "princess",
        "football",
        "baseball",
        "welcome1",
        "welcome123",
        "letmein1",
        "letmein123",
        "trustno1",
        "superman",
        "starwars",
        "whatever",
        "computer",
        "michelle",
        "jennifer",
        "corvette",
        "mercedes",
        "changeme",
        "changeme123",
        "administrator",
        "admin123",
        "admin1234",
        "adminadmin",
        "rootroot",
        "abcd1234",
        "abc12345",
        "abcdefgh",
        "aa123456",
        "qwertyui",
        "chatter123",
        "chatterchatter",
        "correcthorsebatterystaple",
    }
)


class WeakPassword(Unprocessable):
    code = "weak_password"


class PasswordPolicy:
    def __init__(self, *, min_length: int) -> None:
        self.min_length = min_length

    def check(self, password: str, *, email: str) -> None:
        """Raise `WeakPassword` naming the first rule `password` breaks."""
        lowered = password.lower()
        if lowered in COMMON_PASSWORDS or lowered.replace(" ", "") in COMMON_PASSWORDS:
            self._refuse("not one of the most common passwords", "common")
        email = email.strip().lower()
        local = email.partition("@")[0]
        # A local part of a few letters would match half the dictionary: from 4 on.
        named = email in lowered or lowered == local or (len(local) >= 4 and local in lowered)
        if email and named:
            self._refuse("not your email address or its name part", "contains_email")
        if len(password) < self.min_length:
            self._refuse(f"at least {self.min_length} characters", "min_length")

    def _refuse(self, requirement: str, rule: str) -> NoReturn:
        raise WeakPassword(
            f"The password is too weak: it must be {requirement}.",
            details={"field": "password", "rule": rule},
        )
