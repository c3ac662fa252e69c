"""A safe calculator: arithmetic parsed with `ast`, never `eval`."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from decimal import Context, Decimal, localcontext

from langchain_core.tools import BaseTool, StructuredTool

MAX_EXPRESSION_LENGTH = 200
MAX_EXPONENT = 1000
# Our own context, so results never depend on whatever the calling thread configured.
PRECISION = 28
_CONTEXT = Context(prec=PRECISION)


def _div(left: Decimal, right: Decimal) -> Decimal:
    if right == 0:  # Decimal calls 0/0 "undefined", not a division by zero
        raise ZeroDivisionError
    return left / right


def _floordiv(left: Decimal, right: Decimal) -> Decimal:
    # Decimal's // truncates toward zero (-7 // 2 == -3); a calculator floors like Python.
    if right == 0:
        raise ZeroDivisionError
    quotient, remainder = divmod(left, right)
    return quotient - 1 if remainder and (remainder < 0) != (right < 0) else quotient


def _mod(left: Decimal, right: Decimal) -> Decimal:
    # Decimal's % takes the dividend's sign (-7 % 2 == -1); Python's takes the divisor's.
    if right == 0:
        raise ZeroDivisionError
    remainder = left % right
    return remainder + right if remainder and (remainder < 0) != (right < 0) else remainder


def _power(left: Decimal, right: Decimal) -> Decimal:
    if abs(right) > MAX_EXPONENT:
        raise CalculationError("exponent is too large")
    if left == 0 and right == 0:  # Decimal calls 0**0 undefined; arithmetic says 1
        return Decimal(1)
    return left**right


_BINARY: dict[type[ast.operator], Callable[[Decimal, Decimal], Decimal]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: _div,
    ast.FloorDiv: _floordiv,
    ast.Mod: _mod,
    ast.Pow: _power,
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
    except (SyntaxError, ValueError) as exc:  # ValueError: null bytes, on some versions
        raise CalculationError(f"cannot parse {expression!r}") from exc
    with localcontext(_CONTEXT):
        try:
            return _format(_evaluate(tree.body))
        except ZeroDivisionError as exc:  # before ArithmeticError: Decimal's is both
            raise CalculationError("division by zero") from exc
        except (ArithmeticError, RecursionError) as exc:  # decimal signals, overflow
            raise CalculationError(f"cannot evaluate {expression!r}") from exc


def _evaluate(node: ast.expr) -> Decimal:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _finite(Decimal(str(node.value)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        return _finite(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    raise CalculationError("only numbers, + - * / // % ** and parentheses are allowed")


def _finite(value: Decimal) -> Decimal:
    # A literal like 1e999 is float infinity; 0 ** -1 is Decimal infinity without a signal.
    if not value.is_finite():
        raise CalculationError("the result is not a finite number")
    return value


def _format(value: Decimal) -> str:
    value = value.normalize()
    if abs(value.adjusted()) >= PRECISION:  # beyond exact digits: say so, in E notation
        return str(value)
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value, "f")


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
