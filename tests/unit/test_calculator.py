"""The calculator tool: arithmetic only, parsed with ast, never eval."""

from __future__ import annotations

import pytest

from chatter.workflows.tools import builtin_tools
from chatter.workflows.tools.calculator import (
    MAX_EXPONENT,
    MAX_EXPRESSION_LENGTH,
    CalculationError,
    calculate,
    calculator_tool,
)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2+2", "4"),
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("10 - 4 - 3", "3"),
        ("2 * (3 + (4 - 1)) / 3", "4"),
        ("2^10", "1024"),
        ("2**10", "1024"),
        ("2^3^2", "512"),  # right-associative, like **
        ("-3 + 5", "2"),
        ("-(2 + 3)", "-5"),
        ("--4", "4"),
        ("+7", "7"),
        ("-2^2", "-4"),
        ("0.1 + 0.2", "0.3"),
        ("1.5 * 4", "6"),
        ("7 / 2", "3.5"),
        ("1 / 4", "0.25"),
        ("1 / 3", "0.3333333333333333333333333333"),
        ("2.50", "2.5"),
        ("1e3", "1000"),
        ("12*(3+4)", "84"),
        ("7 // 2", "3"),
        ("7 % 3", "1"),
        ("2^0.5", "1.414213562373095048801688724"),
        ("2^-1", "0.5"),
    ],
)
def test_arithmetic(expression: str, expected: str) -> None:
    assert calculate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("-7 // 2", "-4"),
        ("7 // -2", "-4"),
        ("-7 % 2", "1"),
        ("7 % -2", "-1"),
        ("-7.5 % 2", "0.5"),
    ],
)
def test_floor_division_and_modulo_floor_like_python(expression: str, expected: str) -> None:
    assert calculate(expression) == expected


def test_zero_to_the_zero_is_one() -> None:
    assert calculate("0^0") == "1"


@pytest.mark.parametrize("expression", ["2^100", "10^28", "9^999"])
def test_large_results_are_shown_in_e_notation(expression: str) -> None:
    result = calculate(expression)

    assert "E+" in result


def test_large_result_keeps_its_leading_digits() -> None:
    assert calculate("2^100") == "1.267650600228229401496703205E+30"


@pytest.mark.parametrize("expression", ["1/0", "1 // 0", "1 % 0", "0/0", "5 / (3 - 3)"])
def test_division_by_zero(expression: str) -> None:
    with pytest.raises(CalculationError, match="division by zero"):
        calculate(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "__import__('os').system('true')",
        "a+1",
        "x",
        "(1).real",
        "'a'*3",
        "'a'",
        "abs(-1)",
        "[1, 2]",
        "(1, 2)",
        "{1: 2}",
        "1 if 1 else 2",
        "lambda: 1",
        "1 < 2",
        "True + 1",
        "None",
        "1j",
        "2 & 3",
        "1 << 3",
        "~1",
        "not 1",
        "[x for x in ()]",
        "b'x'",
    ],
)
def test_anything_but_arithmetic_is_rejected(expression: str) -> None:
    with pytest.raises(CalculationError):
        calculate(expression)


@pytest.mark.parametrize("expression", ["", "2 +", "(1", "1 2", "import os", "1\x00"])
def test_syntax_errors(expression: str) -> None:
    with pytest.raises(CalculationError):
        calculate(expression)


def test_exponent_limit() -> None:
    assert calculate(f"1^{MAX_EXPONENT}") == "1"
    with pytest.raises(CalculationError, match="exponent"):
        calculate(f"2^{MAX_EXPONENT + 1}")
    with pytest.raises(CalculationError, match="exponent"):
        calculate(f"2^-{MAX_EXPONENT + 1}")
    with pytest.raises(CalculationError, match="exponent"):
        calculate("9^9^9")


@pytest.mark.parametrize("expression", ["((9^999)^999)^999", "1e999", "((10^999)^999)^2"])
def test_overflow_is_an_error_not_a_crash(expression: str) -> None:
    with pytest.raises(CalculationError):
        calculate(expression)


def test_infinite_results_are_rejected() -> None:
    with pytest.raises(CalculationError):
        calculate("0^-1")


def test_length_limit() -> None:
    longest = "1+" * ((MAX_EXPRESSION_LENGTH - 1) // 2) + "1"
    assert len(longest) <= MAX_EXPRESSION_LENGTH
    assert calculate(longest) == str((MAX_EXPRESSION_LENGTH - 1) // 2 + 1)

    with pytest.raises(CalculationError, match="too long"):
        calculate("1" * (MAX_EXPRESSION_LENGTH + 1))


def test_deep_nesting_within_the_length_limit_is_handled() -> None:
    depth = (MAX_EXPRESSION_LENGTH - 1) // 2
    assert calculate("(" * depth + "1" + ")" * depth) == "1"
    assert calculate("-" * (MAX_EXPRESSION_LENGTH - 1) + "1") == "-1"


def test_calculation_error_is_a_value_error() -> None:
    assert issubclass(CalculationError, ValueError)


async def test_tool_returns_the_result() -> None:
    tool = calculator_tool()

    assert tool.name == "calculator"
    assert await tool.ainvoke({"expression": "2+2"}) == "4"
    assert tool.invoke({"expression": "12*(3+4)"}) == "84"


@pytest.mark.parametrize(
    "expression", ["1/0", "__import__('os')", "2^100000", "1" * 500, "((9^999)^999)^999"]
)
async def test_tool_returns_an_error_string_instead_of_raising(expression: str) -> None:
    result = await calculator_tool().ainvoke({"expression": expression})

    assert isinstance(result, str)
    assert result.startswith("Error: ")


def test_builtin_tools_include_the_calculator() -> None:
    tools = builtin_tools()

    assert set(tools) == {"calculator", "current_time"}
    assert tools["calculator"].invoke({"expression": "6*7"}) == "42"
