"""Security events: who logged in, which credential was refused, which key was made or
revoked, who asked for someone else's resource.

Each is written with the change it describes (a login's `last_login_at`, a key's row, a
refresh-token family's revocation) or, for a refusal that changes nothing, in a short
transaction of its own, through `EventPublisher.commit`: written last, published after
the commit. The data never carries a secret: no password, no token, no API key beyond
its public prefix.
"""

from __future__ import annotations

from typing import Literal

from chatter.domain.events import DomainEvent, EventType
from chatter.storage.models import ApiKey

CredentialKind = Literal["access_token", "api_key", "refresh_token"]
LoginFailure = Literal["unknown_email", "bad_password", "inactive"]
Resource = Literal[
    "conversation", "execution", "api_key", "trace", "workflow_definition", "admin_api"
]
AccountChange = Literal[
    EventType.PASSWORD_CHANGED,
    EventType.SESSIONS_ENDED,
    EventType.USER_DEACTIVATED,
    EventType.USER_REACTIVATED,
    EventType.USER_ROLE_CHANGED,
]


def login_succeeded(correlation_id: str | None, user_id: str) -> DomainEvent:
    return DomainEvent(
        EventType.LOGIN_SUCCEEDED, correlation_id, user_id=user_id, data={"method": "password"}
    )


def login_failed(
    correlation_id: str | None, email: str, reason: LoginFailure, user_id: str | None
) -> DomainEvent:
    """`email` as normalised for the lookup; `user_id` only when that account exists."""
    return DomainEvent(
        EventType.LOGIN_FAILED,
        correlation_id,
        user_id=user_id,
        data={"email": email, "reason": reason},
    )


def token_refused(
    correlation_id: str | None, kind: CredentialKind, reason: str, user_id: str | None
) -> DomainEvent:
    return DomainEvent(
        EventType.TOKEN_REFUSED,
        correlation_id,
        user_id=user_id,
        data={"kind": kind, "reason": reason},
    )


def api_key_changed(correlation_id: str | None, record: ApiKey, *, revoked: bool) -> DomainEvent:
    return DomainEvent(
        EventType.API_KEY_REVOKED if revoked else EventType.API_KEY_CREATED,
        correlation_id,
        user_id=record.user_id,
        data={"key_id": record.id, "name": record.name, "prefix": record.prefix},
    )


def access_denied(
    correlation_id: str | None, user_id: str, resource: Resource, resource_id: str
) -> DomainEvent:
    """Recorded for admins only (no `user_id`: the caller's own event stream would
    otherwise tell it that the resource it got a 404 for exists). The caller is in the
    data; the owner is not recorded."""
    return DomainEvent(
        EventType.ACCESS_DENIED,
        correlation_id,
        data={"resource": resource, "id": resource_id, "caller_user_id": user_id},
    )


def account_changed(
    correlation_id: str | None,
    change: AccountChange,
    user_id: str,
    actor_user_id: str,
    **data: str,
) -> DomainEvent:
    """A change to `user_id`'s account (its sessions, password, status or role), made by
    `actor_user_id` (the user themselves, or an admin)."""
    return DomainEvent(
        change, correlation_id, user_id=user_id, data={"actor_user_id": actor_user_id, **data}
    )


RateLimitScope = Literal["requests", "tokens", "login", "register"]
RateLimitSubject = Literal["user", "api_key", "account", "ip"]


def rate_limited(
    correlation_id: str | None,
    scope: RateLimitScope,
    subject: RateLimitSubject,
    *,
    limit: int,
    retry_after: int,
    user_id: str | None = None,
    detail: dict[str, str] | None = None,
) -> DomainEvent:
    """A refusal by a rate limit or a login lockout. `detail`: what was counted (an API
    key's public prefix, the normalised email, the client address), never a secret."""
    return DomainEvent(
        EventType.RATE_LIMITED,
        correlation_id,
        user_id=user_id,
        data={
            "scope": scope,
            "subject": subject,
            "limit": limit,
            "retry_after": retry_after,
            **(detail or {}),
        },
    )
