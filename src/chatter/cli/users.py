"""`chatter users ...`."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from chatter.domain.enums import UserRole
from chatter.errors import ChatterError
from chatter.settings import Settings

users_app = typer.Typer(help="User management.", no_args_is_help=True)
console = Console()


@users_app.command("create")
def create(
    email: str = typer.Option(..., help="Email address (login)."),
    password: str = typer.Option(..., help="Password (the password policy applies)."),
    admin: bool = typer.Option(False, "--admin", help="Give the user the admin role."),
    display_name: str | None = typer.Option(None, help="Display name."),
) -> None:
    """Create a user."""
    if len(password) < 8:
        console.print("[red]Password must be at least 8 characters.[/red]")
        raise typer.Exit(code=2)

    async def _run() -> str:
        # Imported here: the container pulls in every provider SDK (seconds of imports) that
        # the other commands, `chatter chat` and `chatter db upgrade`, never need.
        from chatter.container import Container

        container = Container.build(Settings())
        try:
            async with container.sessions() as session:
                user = await container.accounts.create_user(
                    session=session,
                    email=email,
                    password=password,
                    display_name=display_name,
                    role=UserRole.ADMIN if admin else UserRole.USER,
                )
                return user.id
        finally:
            await container.aclose()

    try:
        user_id = asyncio.run(_run())
    except ChatterError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(code=1) from exc
    console.print(f"[green]Created {'admin' if admin else 'user'} {email} ({user_id}).[/green]")
