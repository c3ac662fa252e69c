"""Production refusals at startup (default secret, SQLite, a malformed CORS list), CORS with
and without credentials, and the security headers on API, docs and dashboard responses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chatter.app import create_app
from chatter.settings import DEFAULT_SECRET_KEY, Settings
from conftest import TEST_SECRET, make_settings, running_app

POSTGRES = "postgresql+asyncpg://chatter@db.internal/chatter"


def production(**values: object) -> Settings:
    base: dict[str, object] = {
        "env": "production",
        "secret_key": TEST_SECRET,
        "database_url": POSTGRES,
    }
    base.update(values)
    return Settings(_env_file=None, **base)  # type: ignore[arg-type]


def test_production_accepts_a_real_secret_and_postgresql() -> None:
    settings = production()
    assert create_app(settings).title == "Chatter"


@pytest.mark.parametrize("secret", [DEFAULT_SECRET_KEY, "", "too-short"])
def test_production_refuses_the_default_or_a_weak_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="CHATTER_SECRET_KEY"):
        production(secret_key=secret)


def test_production_refuses_sqlite_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    sqlite = "sqlite+aiosqlite:///./chatter.db"
    with pytest.raises(ValidationError, match="CHATTER_ALLOW_SQLITE_IN_PRODUCTION"):
        production(database_url=sqlite)
    assert production(database_url=sqlite, allow_sqlite_in_production=True).is_sqlite
    # From the environment, as an operator sets it.
    monkeypatch.setenv("CHATTER_ENV", "production")
    monkeypatch.setenv("CHATTER_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("CHATTER_DATABASE_URL", sqlite)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("CHATTER_ALLOW_SQLITE_IN_PRODUCTION", "true")
    assert Settings(_env_file=None).allow_sqlite_in_production  # type: ignore[call-arg]
    # Development and tests are not production: SQLite needs no permission there.
    monkeypatch.delenv("CHATTER_ALLOW_SQLITE_IN_PRODUCTION")
    monkeypatch.setenv("CHATTER_ENV", "development")
    assert Settings(_env_file=None).is_sqlite  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "origins",
    ["*,https://app.example.com", "https://app.example.com/path", "app.example.com", "null"],
)
def test_malformed_cors_lists_are_refused(origins: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATTER_CORS_ORIGINS", origins)
    with pytest.raises(ValidationError, match="CHATTER_CORS_ORIGINS"):
        Settings(_env_file=None)  # type: ignore[call-arg]


async def test_cors_star_is_served_without_credentials(database_url: str) -> None:
    async with running_app(make_settings(database_url, cors_origins=["*"])) as (_, client):
        response = await client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert response.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in response.headers
        preflight = await client.options(
            "/api/v1/auth/me",
            headers={
                "Origin": "https://evil.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in preflight.headers


async def test_named_origins_get_credentials_and_others_nothing(database_url: str) -> None:
    settings = make_settings(database_url, cors_origins=["https://app.example.com"])
    async with running_app(settings) as (_, client):
        allowed = await client.get("/healthz", headers={"Origin": "https://app.example.com"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        other = await client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


COMMON = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


async def test_security_headers_on_api_docs_and_dashboard(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        responses = {
            path: await client.get(path)
            for path in (
                "/healthz",
                "/api/v1/auth/me",
                "/openapi.json",
                "/docs",
                "/redoc",
                "/dashboard",
                "/nope",
            )
        }
        for path, response in responses.items():
            for name, value in COMMON.items():
                assert response.headers.get(name) == value, (path, name)
            assert "strict-transport-security" not in response.headers, path
        assert responses["/api/v1/auth/me"].status_code == 401
        for path in ("/healthz", "/api/v1/auth/me", "/openapi.json", "/nope"):
            csp = responses[path].headers["content-security-policy"]
            assert csp == "default-src 'none'; frame-ancestors 'none'", path
        for path in ("/docs", "/redoc"):
            assert responses[path].headers["content-security-policy"] == "frame-ancestors 'none'"
        dashboard = responses["/dashboard"].headers["content-security-policy"]
        assert "script-src 'self'" in dashboard
        assert "frame-ancestors 'none'" in dashboard
        assert "unsafe-inline" not in dashboard


async def test_hsts_over_https_and_behind_a_trusted_proxy_only(database_url: str) -> None:
    hsts = "max-age=31536000; includeSubDomains"
    async with running_app(make_settings(database_url)) as (_, client):
        # Over https (as uvicorn reports it, also for a proxy in --forwarded-allow-ips).
        secure = await client.get("https://chatter.test/healthz")
        assert secure.headers["strict-transport-security"] == hsts
        # A header anyone can send is not believed unless the operator says so.
        spoofed = await client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in spoofed.headers
    trusted = make_settings(database_url, security={"trust_forwarded_proto": True})
    async with running_app(trusted) as (_, client):
        proxied = await client.get("/healthz", headers={"X-Forwarded-Proto": "https, http"})
        assert proxied.headers["strict-transport-security"] == hsts
        plain = await client.get("/healthz", headers={"X-Forwarded-Proto": "http"})
        assert "strict-transport-security" not in plain.headers
    off = make_settings(database_url, security={"hsts_max_age_s": 0})
    async with running_app(off) as (_, client):
        assert (
            "strict-transport-security"
            not in (await client.get("https://chatter.test/healthz")).headers
        )
