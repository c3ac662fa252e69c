"""The fault plan itself: the rates it promises, and the same faults for the same turn."""

from __future__ import annotations

from collections import Counter

from fault_injection import Fault, FaultRates, fault_for, faulty_responder, turn_faults

RATES = FaultRates(http_500=0.10, timeout=0.05, cut=0.05)


def test_faults_come_at_the_promised_rates() -> None:
    seen = Counter(fault_for(7, turn, 0, RATES) for turn in range(20_000))
    shares = {fault: seen[fault] / 20_000 for fault in Fault}
    assert abs(shares[Fault.HTTP_500] - 0.10) < 0.01
    assert abs(shares[Fault.TIMEOUT] - 0.05) < 0.01
    assert abs(shares[Fault.CUT] - 0.05) < 0.01


def test_a_turn_meets_the_same_faults_whatever_the_order() -> None:
    respond = faulty_responder(7, RATES, timeout_delay_s=3)
    turns = [t for t in range(200) if turn_faults(7, t, 1, RATES) != [Fault.NONE]]
    for turn in turns + turns[::-1]:
        reply = respond({"messages": [{"role": "user", "content": f"[turn {turn}] hi"}]})
        fault = fault_for(7, turn, 0, RATES)
        assert (reply.status == 500) == (fault is Fault.HTTP_500)
        assert (reply.delay_s == 3) == (fault is Fault.TIMEOUT)
        assert (reply.break_after_chunks is not None) == (fault is Fault.CUT)


def test_a_tool_turn_asks_for_the_calculator_then_answers() -> None:
    respond = faulty_responder(7, FaultRates(0, 0, 0), timeout_delay_s=3)
    user = {"role": "user", "content": "[turn 1] 6*7?"}
    first = respond({"messages": [user], "tools": [{}]})
    assert first.tool_calls
    assert first.tool_calls[0]["name"] == "calculator"
    tool = {"role": "tool", "content": "42"}
    second = respond({"messages": [user, {"role": "assistant"}, tool], "tools": [{}]})
    assert second.tool_calls is None
    assert second.content
