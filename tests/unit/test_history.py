"""Stored messages -> what the model sees: valid tool-call structure, nothing orphaned."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from chatter.services.history import to_langchain
from chatter.storage.models import Message


def _message(
    role: str,
    content: str = "",
    *,
    status: str = "complete",
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: str | None = None,
) -> Message:
    return Message(
        role=role,
        content=content,
        status=status,
        tool_calls=tool_calls,
        tool_call_id=tool_call_id,
    )


def user(content: str) -> Message:
    return _message("user", content)


def assistant(
    content: str, *, status: str = "complete", tool_calls: list[dict[str, Any]] | None = None
) -> Message:
    return _message("assistant", content, status=status, tool_calls=tool_calls)


def tool(call_id: str, content: str) -> Message:
    return _message("tool", content, tool_call_id=call_id)


def _call(call_id: str, name: str = "calculator", **args: Any) -> dict[str, Any]:
    return {"id": call_id, "name": name, "args": args}


def _shape(messages: list[BaseMessage]) -> list[str]:
    return [type(message).__name__ for message in messages]


def _assert_no_orphans(messages: list[BaseMessage]) -> None:
    """Every tool call is answered right after it, and every tool result has its call."""
    for index, message in enumerate(messages):
        if isinstance(message, AIMessage) and message.tool_calls:
            following = messages[index + 1 : index + 1 + len(message.tool_calls)]
            assert all(isinstance(m, ToolMessage) for m in following), _shape(messages)
            answered = {m.tool_call_id for m in following if isinstance(m, ToolMessage)}
            assert answered == {call["id"] for call in message.tool_calls}
        if isinstance(message, ToolMessage):
            calls = [
                call["id"]
                for previous in messages[:index]
                if isinstance(previous, AIMessage)
                for call in previous.tool_calls
            ]
            assert message.tool_call_id in calls


def test_system_prompt_comes_first() -> None:
    converted = to_langchain([user("hi"), assistant("hello")], "Be brief.")

    assert isinstance(converted[0], SystemMessage)
    assert converted[0].content == "Be brief."
    assert _shape(converted) == ["SystemMessage", "HumanMessage", "AIMessage"]


def test_no_system_prompt() -> None:
    assert _shape(to_langchain([user("hi")], None)) == ["HumanMessage"]
    assert _shape(to_langchain([user("hi")], "")) == ["HumanMessage"]
    assert to_langchain([], None) == []
    assert to_langchain([], "sys") == [SystemMessage("sys")]


def test_user_and_assistant_alternate() -> None:
    converted = to_langchain(
        [user("one"), assistant("1"), user("two"), assistant("2"), user("three")], None
    )

    assert converted == [
        HumanMessage("one"),
        AIMessage("1"),
        HumanMessage("two"),
        AIMessage("2"),
        HumanMessage("three"),
    ]


def test_stored_system_message_is_kept_in_place() -> None:
    converted = to_langchain([_message("system", "Note."), user("hi")], "Prompt.")

    assert converted == [SystemMessage("Prompt."), SystemMessage("Note."), HumanMessage("hi")]


def test_tool_turn_becomes_call_results_answer() -> None:
    stored = [
        user("What is 6*7 and the time?"),
        tool("call-1", "42"),
        tool("call-2", "12:00 UTC"),
        assistant(
            "42, at noon.",
            tool_calls=[
                _call("call-1", expression="6*7"),
                _call("call-2", name="current_time"),
            ],
        ),
    ]

    converted = to_langchain(stored, "sys")

    assert _shape(converted) == [
        "SystemMessage",
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "ToolMessage",
        "AIMessage",
    ]
    call_message = converted[2]
    assert isinstance(call_message, AIMessage)
    assert call_message.content == ""
    assert [(c["id"], c["name"], c["args"]) for c in call_message.tool_calls] == [
        ("call-1", "calculator", {"expression": "6*7"}),
        ("call-2", "current_time", {}),
    ]
    results = converted[3:5]
    assert [(m.tool_call_id, m.content) for m in results if isinstance(m, ToolMessage)] == [
        ("call-1", "42"),
        ("call-2", "12:00 UTC"),
    ]
    assert converted[5] == AIMessage("42, at noon.")
    _assert_no_orphans(converted)


def test_tool_call_without_args_key_gets_empty_args() -> None:
    stored = [
        user("time?"),
        tool("c1", "noon"),
        assistant("noon", tool_calls=[{"id": "c1", "name": "current_time"}]),
    ]

    converted = to_langchain(stored, None)

    call_message = converted[1]
    assert isinstance(call_message, AIMessage)
    assert call_message.tool_calls[0]["args"] == {}


def test_conversation_continues_after_a_tool_turn() -> None:
    stored = [
        user("6*7?"),
        tool("c1", "42"),
        assistant("42", tool_calls=[_call("c1", expression="6*7")]),
        user("thanks"),
        assistant("you're welcome"),
    ]

    converted = to_langchain(stored, None)

    assert _shape(converted) == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
        "HumanMessage",
        "AIMessage",
    ]
    _assert_no_orphans(converted)


def test_error_assistant_with_empty_content_adds_no_ai_message() -> None:
    converted = to_langchain([user("hi"), assistant("", status="error"), user("again")], None)

    assert converted == [HumanMessage("hi"), HumanMessage("again")]


def test_error_assistant_content_is_not_shown_to_the_model() -> None:
    converted = to_langchain([user("hi"), assistant("half an answ", status="error")], None)

    assert converted == [HumanMessage("hi")]


def test_partial_assistant_content_is_kept() -> None:
    converted = to_langchain([user("hi"), assistant("half an answ", status="partial")], None)

    assert converted == [HumanMessage("hi"), AIMessage("half an answ")]


def test_failed_tool_turn_keeps_its_answered_calls() -> None:
    stored = [
        user("6*7?"),
        tool("c1", "42"),
        assistant("", status="error", tool_calls=[_call("c1", expression="6*7")]),
        user("well?"),
    ]

    converted = to_langchain(stored, None)

    assert _shape(converted) == ["HumanMessage", "AIMessage", "ToolMessage", "HumanMessage"]
    _assert_no_orphans(converted)


def test_tool_calls_cut_off_by_the_history_window_are_dropped() -> None:
    # The window starts after c1's tool message: only c2's result survived.
    window = [
        tool("c2", "12:00 UTC"),
        assistant(
            "42, at noon.",
            tool_calls=[_call("c1", expression="6*7"), _call("c2", name="current_time")],
        ),
        user("and now?"),
    ]

    converted = to_langchain(window, "sys")

    assert _shape(converted) == [
        "SystemMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
        "HumanMessage",
    ]
    call_message = converted[1]
    assert isinstance(call_message, AIMessage)
    assert [c["id"] for c in call_message.tool_calls] == ["c2"]
    _assert_no_orphans(converted)


def test_all_tool_results_cut_off_leaves_only_the_answer() -> None:
    window = [assistant("42", tool_calls=[_call("c1", expression="6*7")]), user("ok")]

    converted = to_langchain(window, None)

    assert converted == [AIMessage("42"), HumanMessage("ok")]
    _assert_no_orphans(converted)


def test_tool_results_without_their_assistant_message_are_dropped() -> None:
    # Tool messages whose assistant message is missing (e.g. a turn that never closed).
    stored = [user("6*7?"), tool("c1", "42"), user("hello?"), assistant("hi")]

    converted = to_langchain(stored, None)

    assert converted == [HumanMessage("6*7?"), HumanMessage("hello?"), AIMessage("hi")]


def test_trailing_tool_results_are_dropped() -> None:
    converted = to_langchain([user("6*7?"), tool("c1", "42")], None)

    assert converted == [HumanMessage("6*7?")]


def test_tool_results_for_other_calls_are_not_attached() -> None:
    stored = [
        user("6*7?"),
        tool("stray", "??"),
        tool("c1", "42"),
        assistant("42", tool_calls=[_call("c1", expression="6*7")]),
    ]

    converted = to_langchain(stored, None)

    tool_ids = [m.tool_call_id for m in converted if isinstance(m, ToolMessage)]
    assert tool_ids == ["c1"]
    _assert_no_orphans(converted)
