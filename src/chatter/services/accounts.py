"""User accounts: registration, admin creation, the development bootstrap admin."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.enums import UserRole
from chatter.errors import Conflict, Forbidden
from chatter.services.api_keys import ApiKeyService, CreatedApiKey
from chatter.services.credentials import PasswordHasher
from chatter.services.password_policy import PasswordPolicy
from chatter.storage.models import User

BOOTSTRAP_ADMIN_EMAIL = "admin@chatter.local"


def normalise_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class BootstrapAdmin:
    user: User
    api_key: CreatedApiKey
    password: str


class AccountService:
    def __init__(
        self, passwords: PasswordHasher, policy: PasswordPolicy, *, allow_registration: bool
    ) -> None:
        self._passwords = passwords
        self._policy = policy
        self._allow_registration = allow_registration

    async def register(
        self, *, session: AsyncSession, email: str, password: str, display_name: str | None
    ) -> User:
        if not self._allow_registration:
            raise Forbidden("Self-registration is disabled on this server.")
        return await self.create_user(
            session=session, email=email, password=password, display_name=display_name
        )

    async def create_user(
        self,
        *,
        session: AsyncSession,
        email: str,
        password: str,
        display_name: str | None = None,
        role: UserRole = UserRole.USER,
    ) -> User:
        self._policy.check(password, email=email)
        user = User(
            email=normalise_email(email),
            password_hash=await self._passwords.hash(password),
            display_name=display_name,
            role=role.value,
        )
        session.add(user)
        try:
            await session.commit()
        except IntegrityError as exc:
            await session.rollback()
            raise Conflict("A user with this email already exists.") from exc
        return user

    async def bootstrap_admin(
        self, *, session: AsyncSession, api_keys: ApiKeyService
    ) -> BootstrapAdmin | None:
        """On an empty database, create an admin and an API key so a newcomer can start."""
        count = await session.scalar(select(func.count()).select_from(User))
        await session.commit()
        if count:
            return None
        password = secrets.token_urlsafe(18)
        user = await self.create_user(
            session=session,
            email=BOOTSTRAP_ADMIN_EMAIL,
            password=password,
            display_name="Admin",
            role=UserRole.ADMIN,
        )
        # No request: the bootstrap's events carry no correlation id.
        api_key = await api_keys.create(
            session=session, user=user, name="bootstrap", correlation_id=None
        )
        return BootstrapAdmin(user=user, api_key=api_key, password=password)
