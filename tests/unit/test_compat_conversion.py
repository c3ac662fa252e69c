"""The compatible endpoints' conversions: what a turn stores, usage in each convention,
tool_choice per provider, errors per format."""

from __future__ import annotations

import pytest

from chatter.api.compat.errors import anthropic_error_body, openai_error_body, wire_error
from chatter.api.compat.usage import anthropic_usage, openai_usage
from chatter.domain.enums import MessageRole
from chatter.domain.usage import TokenCounts, Usage
from chatter.errors import BadRequest, ChatterError, Unprocessable
from chatter.providers.tool_choice import ToolChoice, provider_tool_choice
from chatter.services.client_turn import InputMessage, RequestedCall, check_messages, stored_input

SYSTEM = InputMessage(MessageRole.SYSTEM, "Be brief.")
USER = InputMessage(MessageRole.USER, "Weather?")
CALL = InputMessage(
    MessageRole.ASSISTANT, "", tool_calls=(RequestedCall("c1", "weather", {"city": "Oslo"}),)
)
RESULT = InputMessage(MessageRole.TOOL, "sunny", tool_call_id="c1")


def test_a_new_conversation_stores_the_whole_list() -> None:
    assert stored_input([SYSTEM, USER, CALL, RESULT], continuing=False) == (
        SYSTEM,
        USER,
        CALL,
        RESULT,
    )


def test_a_continued_conversation_stores_what_follows_the_last_assistant_message() -> None:
    assert stored_input([SYSTEM, USER, CALL, RESULT], continuing=True) == (RESULT,)
    assert stored_input([SYSTEM, USER], continuing=True) == (SYSTEM, USER)
    # A prefill (the list ends with an assistant message) stores that message.
    assert stored_input([USER, CALL], continuing=True) == (CALL,)


def test_tool_results_need_their_call_and_something_to_answer() -> None:
    check_messages([USER, CALL, RESULT])
    with pytest.raises(BadRequest, match="no earlier assistant"):
        check_messages([USER, RESULT])
    with pytest.raises(BadRequest, match="system"):
        check_messages([SYSTEM])


def test_usage_in_each_convention() -> None:
    tokens = TokenCounts(
        prompt_tokens=170,
        completion_tokens=30,
        cached_tokens=50,
        reasoning_tokens=10,
        cache_write_tokens=20,
    )
    usage = Usage(tokens)
    assert openai_usage(usage) == {
        "prompt_tokens": 170,
        "completion_tokens": 30,
        "total_tokens": 200,
        "prompt_tokens_details": {"cached_tokens": 50},
        "completion_tokens_details": {"reasoning_tokens": 10},
    }
    assert anthropic_usage(usage) == {
        "input_tokens": 100,
        "output_tokens": 30,
        "cache_read_input_tokens": 50,
        "cache_creation_input_tokens": 20,
    }


def test_tool_choice_in_each_dialect() -> None:
    forced = ToolChoice("required", "weather")
    assert provider_tool_choice("openai", forced) == {
        "type": "function",
        "function": {"name": "weather"},
    }
    assert provider_tool_choice("anthropic", forced) == {"type": "tool", "name": "weather"}
    assert provider_tool_choice("anthropic", ToolChoice("required")) == {"type": "any"}
    assert provider_tool_choice("anthropic", ToolChoice("none")) == {"type": "none"}
    assert provider_tool_choice("openai", ToolChoice("auto")) == "auto"
    assert provider_tool_choice("demo", None) is None


class BudgetExceeded(ChatterError):
    """Stands in for an admission error added later (issue 13): mapped with no extra work."""

    code = "budget_exceeded"
    status_code = 402


class RateLimited(ChatterError):
    code = "rate_limited"
    status_code = 429


@pytest.mark.parametrize(
    ("error", "status", "openai_type", "anthropic_type"),
    [
        (BudgetExceeded("over budget"), 402, "insufficient_quota", "billing_error"),
        (RateLimited("slow down"), 429, "rate_limit_error", "rate_limit_error"),
        (Unprocessable("refused"), 400, "invalid_request_error", "invalid_request_error"),
    ],
)
def test_errors_map_generically(
    error: ChatterError, status: int, openai_type: str, anthropic_type: str
) -> None:
    wired = wire_error(error)
    assert wired.status == status
    assert openai_error_body(wired)["error"] == {
        "message": error.message,
        "type": openai_type,
        "code": error.code,
        "param": None,
    }
    assert anthropic_error_body(wired) == {
        "type": "error",
        "error": {"type": anthropic_type, "message": error.message},
    }
