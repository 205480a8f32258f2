"""Safe evaluation of small boolean/arithmetic expressions over named values or table columns.

Used by ``filter.rows``, ``transform.apply`` and ``deploy.condition_blessing``. Only literals, names,
arithmetic, comparisons, ``and``/``or``/``not``, ``in`` with literal lists and a few pure functions
are allowed; attribute access, subscripts, lambdas and any other call are refused. Works the same on
scalars and on pandas Series / NumPy arrays (``and`` becomes an element-wise and).

Expressions come from users and files, so the work is bounded: the text length, the number of AST nodes,
integer sizes (``9**9**9`` fails before computing), sequences built by ``*`` and ``+`` (``'a' * 10**9``
fails before allocating) and string formatting (``%`` on text) are limited or refused, and every error
(``1/0``, a type error, an overflow, an unknown name) becomes one :class:`ParameterError` line naming
the parameter and the expression.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping
from typing import Any

import numpy as np

from claimed_airflow.core.errors import ParameterError

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_FUNCTIONS = {"abs": np.abs, "min": np.minimum, "max": np.maximum, "round": np.round, "log": np.log}
MAX_LENGTH = 10_000  # characters of an expression
MAX_NODES = 2_000  # AST nodes, i.e. operations evaluated (there are no loops)
MAX_INT_BITS = 4_096  # integers an expression computes (about 1,200 digits)
MAX_SEQUENCE = 100_000  # characters or items of a text or list an expression builds
_SHOWN = 200  # characters of the expression quoted in an error


def evaluate(expression: str, names: Mapping[str, Any], *, param: str = "expression") -> Any:
    """Evaluate ``expression`` with ``names`` bound; every error is one line naming ``param`` and the expression."""
    if not isinstance(expression, str):
        raise ParameterError(f"{param}: expected an expression (text), got {type(expression).__name__}")
    shown = repr(expression) if len(expression) <= _SHOWN else repr(expression[:_SHOWN]) + "..."
    if len(expression) > MAX_LENGTH:
        raise ParameterError(f"{param}: expression longer than {MAX_LENGTH} characters in {shown}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ParameterError(f"{param}: invalid expression {shown}: {_line(getattr(exc, 'msg', exc))}") from None
    evaluator = _Evaluator(names, param, shown)
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise evaluator.fail(f"more than {MAX_NODES} operations")
    try:
        return evaluator.visit(tree.body)
    except ParameterError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the user's expression does wrong is one input error
        raise evaluator.fail(f"{type(exc).__name__}: {_line(exc)}") from None


def _line(problem: object) -> str:
    text = " ".join(str(problem).split())
    return text if len(text) <= 300 else text[:300] + "..."


class _Evaluator(ast.NodeVisitor):
    def __init__(self, names: Mapping[str, Any], param: str, shown: str):
        self.names, self.param, self.shown = names, param, shown

    def fail(self, problem: str) -> ParameterError:
        return ParameterError(f"{self.param}: {problem} in {self.shown}")

    def generic_visit(self, node: ast.AST) -> Any:
        raise self.fail(f"{type(node).__name__} is not allowed")

    def visit_Constant(self, node: ast.Constant) -> Any:
        if not isinstance(node.value, (int, float, str, bool, type(None))):
            raise self.fail(f"constant {node.value!r} is not allowed")
        return node.value

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in self.names:
            return self.names[node.id]
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        raise self.fail(f"unknown name {node.id!r} (known: {', '.join(sorted(self.names))})")

    def visit_List(self, node: ast.List) -> list:
        return [self.visit(e) for e in node.elts]

    visit_Tuple = visit_List

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise self.fail(f"operator {type(node.op).__name__} is not allowed")
        left, right = self.visit(node.left), self.visit(node.right)
        self._check(type(node.op), left, right)
        return self._bounded(op(left, right))

    def _check(self, op: type, left: Any, right: Any) -> None:
        """Refuse, before computing, what would take unbounded time or memory."""
        if op in (ast.Mult, ast.Pow, ast.Mod) and any(_is_array(v) and v.dtype.kind in "OSUV" for v in (left, right)):
            raise self.fail(f"operator {op.__name__} on a column of text or objects is not allowed")
        if op is ast.Mod and isinstance(left, (str, bytes)):
            raise self.fail("string formatting (% on text) is not allowed")
        if op is ast.Pow and _is_int(left) and _is_int(right) and right > 0:
            if abs(int(left)).bit_length() * int(right) > MAX_INT_BITS:
                raise self.fail(f"result too large (integers are limited to {MAX_INT_BITS} bits)")
        if op is ast.Mult:
            if _is_int(left) and _is_int(right):
                if abs(int(left)).bit_length() + abs(int(right)).bit_length() > MAX_INT_BITS + 1:
                    raise self.fail(f"result too large (integers are limited to {MAX_INT_BITS} bits)")
            for sequence, count in ((left, right), (right, left)):
                if _is_sequence(sequence) and _is_int(count) and len(sequence) * int(count) > MAX_SEQUENCE:
                    raise self.fail(f"result too large (texts and lists are limited to {MAX_SEQUENCE} items)")
        if op is ast.Add and _is_sequence(left) and _is_sequence(right) and len(left) + len(right) > MAX_SEQUENCE:
            raise self.fail(f"result too large (texts and lists are limited to {MAX_SEQUENCE} items)")

    def _bounded(self, value: Any) -> Any:
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise self.fail(f"result too large (integers are limited to {MAX_INT_BITS} bits)")
        if _is_sequence(value) and len(value) > MAX_SEQUENCE:
            raise self.fail(f"result too large (texts and lists are limited to {MAX_SEQUENCE} items)")
        return value

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return np.logical_not(value) if _is_array(value) else not value
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return +value
        raise self.fail(f"operator {type(node.op).__name__} is not allowed")

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        values = [self.visit(v) for v in node.values]
        if any(_is_array(v) for v in values):
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            result = values[0]
            for value in values[1:]:
                result = combine(result, value)
            return result
        return all(values) if isinstance(node.op, ast.And) else any(values)

    def visit_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        result = True
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.visit(right_node)
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right, list):
                    raise self.fail("'in' needs a literal list, e.g. x in ['a', 'b']")
                outcome = left.isin(right) if hasattr(left, "isin") else left in right
                if isinstance(op, ast.NotIn):
                    outcome = np.logical_not(outcome) if _is_array(outcome) else not outcome
            elif type(op) in _COMPARE:
                outcome = _COMPARE[type(op)](left, right)
            else:
                raise self.fail(f"comparison {type(op).__name__} is not allowed")
            result = outcome if result is True else np.logical_and(result, outcome)
            left = right
        return result

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        test, yes, no = self.visit(node.test), self.visit(node.body), self.visit(node.orelse)
        return np.where(test, yes, no) if _is_array(test) else (yes if test else no)

    def visit_Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
            raise self.fail(f"only these functions are allowed: {', '.join(_FUNCTIONS)}")
        return _FUNCTIONS[node.func.id](*[self.visit(a) for a in node.args])


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and getattr(value, "ndim", 0) > 0 and hasattr(value, "dtype")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer))


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (str, bytes, list, tuple))
