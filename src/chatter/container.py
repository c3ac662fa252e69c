"""The one place that wires engine, sessions and services. Built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chatter.services.accounts import AccountService
from chatter.services.api_keys import ApiKeyService
from chatter.services.auth import AuthService
from chatter.services.conversations import ConversationService
from chatter.services.credentials import PasswordHasher, TokenIssuer
from chatter.settings import Settings
from chatter.storage.db import create_engine, create_session_factory


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    accounts: AccountService
    auth: AuthService
    api_keys: ApiKeyService
    conversations: ConversationService

    @classmethod
    def build(cls, settings: Settings) -> Container:
        engine = create_engine(settings.database_url)
        passwords = PasswordHasher()
        tokens = TokenIssuer(
            secret=settings.secret_key.get_secret_value(),
            algorithm=settings.auth.jwt_algorithm,
            access_ttl=timedelta(minutes=settings.auth.access_token_minutes),
            refresh_ttl=timedelta(days=settings.auth.refresh_token_days),
        )
        return cls(
            settings=settings,
            engine=engine,
            sessions=create_session_factory(engine),
            accounts=AccountService(passwords, allow_registration=settings.auth.allow_registration),
            auth=AuthService(passwords, tokens),
            api_keys=ApiKeyService(),
            conversations=ConversationService(),
        )

    async def aclose(self) -> None:
        await self.engine.dispose()
