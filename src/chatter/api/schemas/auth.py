"""Auth request and response bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, EmailStr, Field

from chatter.api.schemas.common import ApiModel, RequestModel, UtcDatetime


class RegisterIn(RequestModel):
    email: EmailStr
    password: str = Field(min_length=8, max_length=256)
    display_name: str | None = Field(default=None, max_length=200)


class LoginIn(RequestModel):
    # Not EmailStr: login only looks the address up, and accounts made by the CLI or the
    # development bootstrap (admin@chatter.local) use addresses EmailStr rejects.
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=256)


class RefreshIn(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenPairOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class UserOut(ApiModel):
    id: str
    email: str
    display_name: str | None
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class ApiKeyCreateIn(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    # A naive datetime is ambiguous (and cannot be compared with UTC): require an offset.
    expires_at: UtcDatetime | None = Field(
        default=None,
        description="When the key stops working, with a UTC offset; a time in the past is a 400.",
    )


class ApiKeyOut(ApiModel):
    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="The full key. It is shown only in this response.")


class PasswordChangeIn(RequestModel):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(
        min_length=8,
        max_length=256,
        description="At least CHATTER_SECURITY__PASSWORD_MIN_LENGTH characters (10 by "
        "default), not the email, not a common password (422 `weak_password`).",
    )
