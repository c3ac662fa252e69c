"""/api/v1/providers: what is configured, with which models, and whether prices are known."""

from __future__ import annotations

from fastapi import APIRouter

from chatter.api.deps import ContainerDep, CurrentUser
from chatter.api.schemas.chat import ModelInfoOut, ProviderOut
from chatter.api.schemas.common import DATABASE_RESPONSES, error_responses
from chatter.domain.enums import UserRole

router = APIRouter(prefix="/api/v1/providers", tags=["providers"], responses=DATABASE_RESPONSES)


@router.get("", responses=error_responses(401))
async def list_providers(user: CurrentUser, container: ContainerDep) -> list[ProviderOut]:
    """Base URLs are shown to admins only: they can name internal hosts."""
    registry = container.providers
    out = []
    for config in registry.providers():
        names = list(config.models) or [config.default_model]
        models = [
            ModelInfoOut(
                name=name,
                price_known=registry.pricer.has_price(
                    config.name, name, config.genai_provider_id, free=config.free
                ),
            )
            for name in names
        ]
        out.append(
            ProviderOut(
                name=config.name,
                kind=config.kind,
                configured=config.configured,
                default_model=config.default_model,
                any_model=not config.models,
                models=models,
                base_url=config.base_url if user.role == UserRole.ADMIN.value else None,
            )
        )
    return out
