"""The tool registry's names and caching, against a real MCP server on 127.0.0.1 and a
server list that changes (as another worker would change the table)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.tools import BaseTool

from chatter.workflows.tools import builtin_tools
from chatter.workflows.tools.mcp import McpServerSpec
from chatter.workflows.tools.naming import is_server_name, mcp_tool_name, server_of
from chatter.workflows.tools.registry import RegistryTiming, ToolRegistry
from chatter.workflows.tools.results import result_text, truncate
from fakes.mcp_server import FakeMCPServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Table:
    """A ServerSource whose rows the test edits."""

    def __init__(self) -> None:
        self.specs: list[McpServerSpec] = []
        self.reads = 0

    async def servers(self) -> list[McpServerSpec]:
        self.reads += 1
        return list(self.specs)


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[FakeMCPServer]:
    with FakeMCPServer() as server:
        yield server


def registry(table: Table, clock: Clock) -> ToolRegistry:
    timing = RegistryTiming(cache_ttl_s=60, retry_s=10, load_timeout_s=5, servers_refresh_s=5)
    builtins: dict[str, BaseTool] = builtin_tools()
    return ToolRegistry(builtins, table, timing, clock=clock)


def test_names_are_valid_function_names_that_never_clash() -> None:
    assert mcp_tool_name("files", "read file/v2") == "files__read_file_v2"
    assert len(mcp_tool_name("s" * 32, "t" * 100)) == 64
    assert server_of("files__read") == "files"
    assert server_of("calculator") is None
    assert not any("__" in name for name in builtin_tools())
    assert is_server_name("my-server_1")
    for bad in ("a__b", "a_", "_a", "A", "", "x" * 33, "a.b"):
        assert not is_server_name(bad), bad


def test_results_are_text_and_bounded() -> None:
    assert result_text([{"type": "text", "text": "a"}, {"type": "image", "base64": "x"}]) == (
        "a\n[image block]"
    )
    assert result_text({"k": 1}) == '{"k": 1}'
    cut = truncate("y" * 1000, 200)
    assert len(cut) <= 200
    assert cut.endswith("of 1000 characters]")
    assert truncate("short", 200) == "short"


async def test_tool_lists_are_cached_until_their_ttl(mcp_server: FakeMCPServer) -> None:
    table, clock = Table(), Clock()
    table.specs = [McpServerSpec("fake", "streamable_http", "v1", url=mcp_server.url)]
    tools = registry(table, clock)
    before = mcp_server.list_requests
    assert "fake__add" in await tools.names()
    assert "fake__add" in await tools.tools(["fake__add"])
    assert set(await tools.tools(["calculator"])) == {"calculator"}
    assert mcp_server.list_requests == before + 1
    clock.now += 61
    assert "fake__add" in await tools.tools()  # the stale list at once; listed again behind
    await tools.settled()
    assert mcp_server.list_requests == before + 2
    await tools.tools()
    await tools.settled()
    assert mcp_server.list_requests == before + 2  # fresh again
    # A new registration under the same name (a new version) is loaded anew at once.
    table.specs = [McpServerSpec("fake", "streamable_http", "v2", url=mcp_server.url)]
    clock.now += 6  # past servers_refresh_s: the table is read again
    await tools.tools()
    assert mcp_server.list_requests == before + 3


async def test_servers_changed_elsewhere_are_seen_after_the_refresh(
    mcp_server: FakeMCPServer,
) -> None:
    table, clock = Table(), Clock()
    tools = registry(table, clock)
    assert "fake__add" not in await tools.tools()
    table.specs = [McpServerSpec("fake", "streamable_http", "v1", url=mcp_server.url)]
    assert "fake__add" not in await tools.tools()  # still within servers_refresh_s
    clock.now += 5
    assert "fake__add" in await tools.tools()
    table.specs = []
    tools.invalidate("fake")  # this worker deleted it: seen at once
    assert "fake__add" not in await tools.tools()


async def test_a_server_that_is_down_is_retried_after_retry_s() -> None:
    with FakeMCPServer() as stopped:
        url = stopped.url
    table, clock = Table(), Clock()
    table.specs = [McpServerSpec("down", "streamable_http", "v1", url=url)]
    tools = registry(table, clock)
    assert set(await tools.tools()) == set(builtin_tools())
    (status,) = (await tools.statuses()).values()
    assert status.status == "unavailable"
    assert status.error
    first_check = status.checked_at
    clock.now += 5  # within retry_s: not tried again
    await tools.statuses()
    await tools.settled()
    assert (await tools.statuses())["down"].checked_at == first_check
    clock.now += 6  # tried again in the background; the turns meanwhile do not wait
    assert set(await tools.tools()) == set(builtin_tools())
    await tools.settled()
    assert (await tools.statuses())["down"].checked_at > first_check
    await tools.aclose()
