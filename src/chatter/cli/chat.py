"""`chatter chat`: an interactive terminal chat against a running server, streamed over SSE."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import typer
from rich.console import Console

console = Console()
EXIT_WORDS = {"/exit", "/quit", ":q"}


@dataclass
class ChatSession:
    url: str
    api_key: str
    conversation_id: str | None
    provider: str | None
    model: str | None
    workflow: str | None


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event, data) pairs from an SSE line stream; comments (heartbeats) are skipped."""
    name, data = "message", []
    for line in lines:
        if line.startswith(":"):
            continue
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield name, json.loads("\n".join(data))
            name, data = "message", []


def usage_line(message: dict[str, Any]) -> str:
    cost = Decimal(str(message.get("cost", "0")))
    known = message.get("cost_known", True)
    cost_text = f"${cost:.6f}" if known else "cost unknown"
    ttft = message.get("time_to_first_token_ms")
    parts = [
        f"{message.get('provider_used')}/{message.get('model_used')}",
        f"prompt {message['prompt_tokens']}",
        f"completion {message['completion_tokens']}",
        f"total {message['total_tokens']}",
    ]
    if message.get("cached_tokens"):
        parts.append(f"cached {message['cached_tokens']}")
    if message.get("reasoning_tokens"):
        parts.append(f"reasoning {message['reasoning_tokens']}")
    parts.append(cost_text)
    if message.get("usage_source") == "estimated":
        parts.append("estimated")
    if ttft is not None:
        parts.append(f"ttft {ttft} ms")
    return " · ".join(parts)


def send_turn(client: httpx.Client, session: ChatSession, text: str) -> None:
    body = {
        "message": text,
        "conversation_id": session.conversation_id,
        "provider": session.provider,
        "model": session.model,
        "workflow": session.workflow,
    }
    body = {key: value for key, value in body.items() if value is not None}
    with client.stream("POST", "/api/v1/chat/stream", json=body) as response:
        if response.status_code != 200:
            response.read()
            console.print(_error_text(response), style="red", markup=False)
            return
        console.print("[bold cyan]assistant>[/bold cyan] ", end="")
        for event, data in parse_sse(response.iter_lines()):
            _show(session, event, data)


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        # Not Chatter's error shape: a proxy in between, or not a Chatter server at all.
        return f"HTTP {response.status_code}: {response.text[:200]}"


def _show(session: ChatSession, event: str, data: dict[str, Any]) -> None:
    if event == "start":
        session.conversation_id = data["conversation_id"]
    elif event == "delta":
        console.print(data["text"], end="", markup=False, highlight=False)
    elif event == "tool_call":
        console.print(f"\n[yellow]→ {data['name']}({json.dumps(data['arguments'])})[/yellow]")
    elif event == "tool_result":
        console.print(f"[yellow]← {data['result']}[/yellow]")
    elif event in ("done", "error"):
        console.print()
        if event == "error":
            console.print(f"[red]{data['code']}: {data['message']}[/red]")
        console.print(f"[dim]{usage_line(data['assistant_message'])}[/dim]")
        conversation = data["conversation"]
        console.print(
            f"[dim]conversation {conversation['id']}: {conversation['total_tokens']} tokens, "
            f"${Decimal(str(conversation['total_cost'])):.6f}[/dim]"
        )


def chat(
    conversation: str | None = typer.Option(None, help="Continue this conversation id."),
    provider: str | None = typer.Option(None, help="Provider (default: the server's)."),
    model: str | None = typer.Option(None, help="Model (default: the provider's)."),
    workflow: str | None = typer.Option(
        None,
        help="A template name (chat, chat_with_tools, ...) or one of your workflow definition ids.",
    ),
    url: str = typer.Option("http://127.0.0.1:8000", envvar="CHATTER_URL", help="Server URL."),
    api_key: str = typer.Option(
        ..., envvar="CHATTER_API_KEY", prompt=True, hide_input=True, help="API key or token."
    ),
) -> None:
    """Chat with a running Chatter server; replies stream in, usage is shown after each turn.

    Ctrl-C during a reply cancels that turn and returns to the prompt.
    Ctrl-C at the prompt, Ctrl-D or /exit quits."""
    session = ChatSession(url, api_key, conversation, provider, model, workflow)
    headers = {"Authorization": f"Bearer {api_key}"}
    console.print(
        "[dim]Type a message; /new starts a new conversation. Ctrl-C stops a reply; "
        "Ctrl-D or /exit quits.[/dim]"
    )
    with httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(10, read=300)) as client:
        while (text := read_message()) is not None:
            if text == "/new":
                session.conversation_id = None
                console.print("[dim]New conversation.[/dim]")
                continue
            try:
                send_turn(client, session, text)
            except KeyboardInterrupt:
                # Leaving send_turn closed the stream; the server notices the client gone,
                # cancels the turn and stores what it generated as a `partial` message.
                console.print("\n[yellow]Reply interrupted; the turn is cancelled.[/yellow]")
            except httpx.HTTPError as exc:
                console.print(f"[red]Cannot reach {url}: {exc}[/red]")


def read_message() -> str | None:
    """The next message to send, or None to quit (Ctrl-D, Ctrl-C or an exit word)."""
    while True:
        try:
            text = console.input("[bold green]you>[/bold green] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return None
        if text in EXIT_WORDS:
            return None
        if text:
            return text
