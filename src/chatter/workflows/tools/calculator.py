"""A safe calculator: arithmetic parsed with `ast`, never `eval`."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from langchain_core.tools import BaseTool, StructuredTool

MAX_EXPRESSION_LENGTH = 200
MAX_EXPONENT = 1000
_BINARY: dict[type[ast.operator], Callable[[Decimal, Decimal], Decimal]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Decimal], Decimal]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


class CalculationError(ValueError):
    pass


def calculate(expression: str) -> str:
    """Evaluate +, -, *, /, //, %, ** (or ^) and parentheses on numbers."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise CalculationError("expression is too long")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
        value = _evaluate(tree.body)
    except ZeroDivisionError as exc:
        raise CalculationError("division by zero") from exc
    except (SyntaxError, InvalidOperation, OverflowError) as exc:
        raise CalculationError(f"cannot evaluate {expression!r}: {exc}") from exc
    return _format(value)


def _evaluate(node: ast.expr) -> Decimal:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Decimal(str(node.value))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculationError("exponent is too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    raise CalculationError("only numbers, + - * / // % ** and parentheses are allowed")


def _format(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value.normalize(), "f")


def _calculator(expression: str) -> str:
    try:
        return calculate(expression)
    except CalculationError as exc:
        return f"Error: {exc}"


def calculator_tool() -> BaseTool:
    return StructuredTool.from_function(
        func=_calculator,
        name="calculator",
        description="Evaluate an arithmetic expression, e.g. '12*(3+4)' or '2^10'.",
    )
