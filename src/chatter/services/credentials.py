"""Passwords (argon2), JWTs and API-key secrets. No database access here."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import jwt
from pwdlib import PasswordHash

from chatter.domain.clock import utcnow
from chatter.domain.ids import new_id
from chatter.errors import Unauthorized

API_KEY_PREFIX = "chk_"
TokenType = Literal["access", "refresh"]


class CredentialRefused(Unauthorized):
    """A presented credential was refused. `reason` and `user_id` feed the `token_refused`
    event; `user_id` is set only when the credential proved whose it is (a valid signature,
    a matching key hash), never from an unverified claim."""

    def __init__(self, message: str, *, reason: str, user_id: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.user_id = user_id


class PasswordHasher:
    """argon2 takes ~100 ms of CPU by design: run it in a thread, off the event loop."""

    def __init__(self) -> None:
        self._hash = PasswordHash.recommended()

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hash.hash, password)

    async def verify(self, password: str, password_hash: str) -> bool:
        return await asyncio.to_thread(self._hash.verify, password, password_hash)


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    token_type: TokenType
    token_id: str
    expires_at: datetime
    # The refresh-token family: one per login, shared by the access tokens issued with it,
    # so ending the family (logout, reuse) ends those access tokens too.
    family_id: str | None = None
    # The user's `token_version` when issued; a token of an older version is refused.
    version: int = 0


class TokenIssuer:
    """Signs and checks JWTs; the refresh token's id is the key of its database row."""

    def __init__(self, secret: str, algorithm: str, access_ttl: timedelta, refresh_ttl: timedelta):
        self._secret = secret
        self._algorithm = algorithm
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def issue(
        self, subject: str, token_type: TokenType, *, family_id: str | None = None, version: int = 0
    ) -> tuple[str, TokenClaims]:
        now = utcnow()
        ttl = self.access_ttl if token_type == "access" else self.refresh_ttl
        claims = TokenClaims(subject, token_type, new_id(), now + ttl, family_id, version)
        payload: dict[str, Any] = {
            "sub": subject,
            "typ": token_type,
            "jti": claims.token_id,
            "iat": now,
            "exp": claims.expires_at,
            "ver": version,
        }
        if family_id is not None:
            payload["fam"] = family_id
        return jwt.encode(payload, self._secret, algorithm=self._algorithm), claims

    def decode(self, token: str, expected_type: TokenType) -> TokenClaims:
        try:
            payload = self._verified_payload(token, verify_exp=True)
        except jwt.ExpiredSignatureError as exc:
            # The signature was checked before the expiry: the subject is genuine.
            subject = self._verified_payload(token, verify_exp=False).get("sub")
            raise CredentialRefused(
                "Token has expired.", reason="expired", user_id=_text_or_none(subject)
            ) from exc
        except jwt.InvalidSignatureError as exc:
            raise CredentialRefused("Token is invalid.", reason="bad_signature") from exc
        except jwt.DecodeError as exc:
            raise CredentialRefused("Token is invalid.", reason="malformed") from exc
        except jwt.PyJWTError as exc:
            raise CredentialRefused("Token is invalid.", reason="invalid") from exc
        if payload.get("typ") != expected_type:
            article = "an" if expected_type == "access" else "a"
            raise CredentialRefused(
                f"Expected {article} {expected_type} token.",
                reason="wrong_type",
                user_id=_text_or_none(payload.get("sub")),
            )
        return TokenClaims(
            subject=str(payload["sub"]),
            token_type=expected_type,
            token_id=str(payload["jti"]),
            expires_at=datetime.fromtimestamp(int(payload["exp"]), tz=utcnow().tzinfo),
            family_id=_text_or_none(payload.get("fam")),
            # Tokens issued before versions existed carry none: version 0, the default.
            version=payload["ver"] if isinstance(payload.get("ver"), int) else 0,
        )

    def _verified_payload(self, token: str, *, verify_exp: bool) -> dict[str, Any]:
        payload: dict[str, Any] = jwt.decode(
            token,
            self._secret,
            algorithms=[self._algorithm],
            options={"require": ["sub", "exp", "jti", "typ"], "verify_exp": verify_exp},
        )
        return payload


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class GeneratedApiKey:
    full_key: str
    prefix: str
    secret_hash: str


def generate_api_key() -> GeneratedApiKey:
    """`chk_<prefix>_<secret>`: the prefix finds the row, the secret is only stored hashed.

    A SHA-256 of a 256-bit random secret is safe to store; argon2 would only slow every request.
    """
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    full_key = f"{API_KEY_PREFIX}{prefix}_{secret}"
    return GeneratedApiKey(full_key, prefix, hash_api_key(full_key))


def hash_api_key(full_key: str) -> str:
    return hashlib.sha256(full_key.encode()).hexdigest()


def parse_api_key_prefix(token: str) -> str | None:
    if not token.startswith(API_KEY_PREFIX):
        return None
    prefix, _, secret = token[len(API_KEY_PREFIX) :].partition("_")
    return prefix if prefix and secret else None


def api_key_matches(full_key: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(full_key), secret_hash)
