"""Admin API request bodies (responses reuse the auth schemas: UserOut, ApiKeyOut)."""

from __future__ import annotations

from chatter.api.schemas.common import RequestModel
from chatter.domain.enums import UserRole


class RoleIn(RequestModel):
    role: UserRole
