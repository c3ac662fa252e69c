"""/api/v1/auth: register, login, refresh, logout, me, API keys."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from chatter.api.deps import ContainerDep, CorrelationId, CurrentUser, SessionDep
from chatter.api.rate_limiting import client_address
from chatter.api.schemas.auth import (
    ApiKeyCreatedOut,
    ApiKeyCreateIn,
    ApiKeyOut,
    LoginIn,
    PasswordChangeIn,
    RefreshIn,
    RegisterIn,
    TokenPairOut,
    UserOut,
)
from chatter.api.schemas.common import DATABASE_RESPONSES, RATE_LIMITED, error_responses
from chatter.services.auth import TokenPair

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], responses=DATABASE_RESPONSES)


def _pair_out(pair: TokenPair) -> TokenPairOut:
    return TokenPairOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    responses={**error_responses(403, 409, 422), **RATE_LIMITED},
)
async def register(
    body: RegisterIn,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> UserOut:
    await container.login_throttle.check_register(
        session=session, client=client_address(request), correlation_id=correlation_id
    )
    user = await container.accounts.register(
        session=session, email=body.email, password=body.password, display_name=body.display_name
    )
    return UserOut.model_validate(user)


@router.post("/login", responses={**error_responses(401, 422), **RATE_LIMITED})
async def login(
    body: LoginIn,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> TokenPairOut:
    """Too many failures for an account or from an address lock it out for a while (429,
    whatever the password): see docs/limits.md."""
    async with container.login_throttle.attempt(
        session=session,
        email=body.email,
        client=client_address(request),
        correlation_id=correlation_id,
    ):
        pair = await container.auth.login(
            session=session,
            email=body.email,
            password=body.password,
            correlation_id=correlation_id,
        )
    return _pair_out(pair)


@router.post("/refresh", responses=error_responses(401, 422))
async def refresh(
    body: RefreshIn, container: ContainerDep, session: SessionDep, correlation_id: CorrelationId
) -> TokenPairOut:
    pair = await container.auth.refresh(
        session=session, refresh_token=body.refresh_token, correlation_id=correlation_id
    )
    return _pair_out(pair)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 422))
async def logout(
    body: RefreshIn, container: ContainerDep, session: SessionDep, correlation_id: CorrelationId
) -> Response:
    await container.auth.logout(
        session=session, refresh_token=body.refresh_token, correlation_id=correlation_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401))
async def logout_everywhere(
    user: CurrentUser, container: ContainerDep, session: SessionDep, correlation_id: CorrelationId
) -> Response:
    """End every session of the caller: all access and refresh tokens stop working at once
    (API keys are not sessions: revoke them one by one)."""
    await container.auth.logout_everywhere(
        session=session, user=user, correlation_id=correlation_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/password", responses=error_responses(401, 422))
async def change_password(
    body: PasswordChangeIn,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> TokenPairOut:
    """Change the caller's password. Every session ends (this one too); the answer is a new
    session's tokens. 422 `wrong_password` for a wrong current password, `weak_password`
    when the new one breaks the policy."""
    pair = await container.auth.change_password(
        session=session,
        user=user,
        current_password=body.current_password,
        new_password=body.new_password,
        correlation_id=correlation_id,
    )
    return _pair_out(pair)


@router.get("/me", responses=error_responses(401))
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.post(
    "/api-keys", status_code=status.HTTP_201_CREATED, responses=error_responses(400, 401, 422)
)
async def create_api_key(
    body: ApiKeyCreateIn,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> ApiKeyCreatedOut:
    created = await container.api_keys.create(
        session=session,
        user=user,
        name=body.name,
        expires_at=body.expires_at,
        correlation_id=correlation_id,
    )
    out = ApiKeyOut.model_validate(created.record)
    return ApiKeyCreatedOut(**out.model_dump(), key=created.key)


@router.get("/api-keys", responses=error_responses(401))
async def list_api_keys(
    user: CurrentUser, container: ContainerDep, session: SessionDep
) -> list[ApiKeyOut]:
    keys = await container.api_keys.list(session=session, user=user)
    return [ApiKeyOut.model_validate(key) for key in keys]


@router.delete(
    "/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404),
)
async def revoke_api_key(
    key_id: str,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> Response:
    await container.api_keys.revoke(
        session=session, user=user, key_id=key_id, correlation_id=correlation_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
