"""Safe evaluation of small boolean/arithmetic expressions over named values or table columns.

Used by ``filter.rows``, ``transform.apply`` and ``deploy.condition_blessing``. Only literals, names,
arithmetic, comparisons, ``and``/``or``/``not``, ``in`` with literal lists and a few pure functions
are allowed; attribute access, subscripts, lambdas and any other call are refused. Works the same on
scalars and on pandas Series / NumPy arrays (``and`` becomes an element-wise and).
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


def evaluate(expression: str, names: Mapping[str, Any], *, param: str = "expression") -> Any:
    """Evaluate ``expression`` with ``names`` bound; errors name ``param`` and the problem."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ParameterError(f"{param}: invalid expression {expression!r}: {exc.msg}") from None
    return _Evaluator(names, param, expression).visit(tree.body)


class _Evaluator(ast.NodeVisitor):
    def __init__(self, names: Mapping[str, Any], param: str, expression: str):
        self.names, self.param, self.expression = names, param, expression

    def fail(self, problem: str) -> ParameterError:
        return ParameterError(f"{self.param}: {problem} in {self.expression!r}")

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
        return op(self.visit(node.left), self.visit(node.right))

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
    return hasattr(value, "shape") and getattr(value, "ndim", 0) > 0
