"""The allow-list for SQL from users: one Spark SQL ``SELECT`` (or one condition) of safe parts only.

A query or condition from a parameter (a DAG Param, a trigger form) is parsed by sqlglot in Spark's
dialect and accepted only when every node of the tree is on the lists below: a read-only query over
the given view (and the query's own ``WITH`` names), plain expressions, and an explicit set of scalar,
aggregate and window functions. Everything else is refused in one line naming the parameter and the
construct: script transformation (``TRANSFORM ... USING``), Java from SQL (``reflect``), file and URL
tables (``parquet.`path```, ``read_csv``), DDL/DML, ``SET``/``ADD JAR``, several statements, Spark's
``${...}`` variable substitution, and whatever sqlglot cannot parse. The backends then run the SQL that
sqlglot writes back from the checked tree, not the text as given, so what runs is what was checked.
"""

from __future__ import annotations

from claimed_airflow.core.errors import ClaimedError

MAX_CHARS = 100_000

# sqlglot node types (exp.<name>) other than function calls and tables
NODES = frozenset(
    """Select Union Intersect Except Subquery With CTE From Join Where Group Having Order Ordered Limit
    Offset Distinct Window WindowSpec Qualify Cube Rollup GroupingSets Alias TableAlias Column Identifier Star
    Literal Boolean Null DataType DataTypeParam Var Interval Paren Tuple Bracket Lambda PropertyEQ
    And Or Not Neg EQ NEQ NullSafeEQ NullSafeNEQ GT GTE LT LTE Is In Between Like ILike
    Add Sub Mul Div Mod IntDiv DPipe BitwiseAnd BitwiseOr BitwiseXor BitwiseNot""".split()
)

# function names as sqlglot knows them (Func.sql_name(), mostly Spark's own; sqlglot maps some Spark
# names: date_trunc -> timestamp_trunc, min_by -> arg_min, collect_list -> array_agg, lpad -> pad),
# or as written for the functions sqlglot does not model (exp.Anonymous)
FUNCTIONS = frozenset(
    """count count_if sum avg mean min max median stddev stddev_pop stddev_samp variance variance_pop
    corr covar_pop covar_samp first last any_value approx_quantile quantile approx_distinct
    arg_min arg_max array_agg array_unique_agg logical_and logical_or
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
    abs ceil floor round bround sqrt cbrt exp ln log power sign greatest least pmod
    coalesce nullif nvl2 if case isnull isnotnull is_nan nanvl safe_divide safe_add safe_subtract
    safe_multiply cast try_cast exists
    lower upper length trim substring left right concat concat_ws replace translate pad split_part
    regexp_split regexp_extract regexp_replace regexp_like starts_with ends_with contains str_position
    initcap reverse ascii chr format_number levenshtein soundex md5 sha sha2 hex unhex to_base64
    from_base64 timestamp_trunc date_trunc ts_or_ds_to_date str_to_time year month day day_of_month
    day_of_week day_of_year hour minute second quarter week_of_year ts_or_ds_add datediff months_between
    add_months last_day next_day current_date current_timestamp extract date_part time_to_str
    time_str_to_time str_to_unix unix_to_str make_date timestamp_seconds
    array array_size array_contains array_to_string array_sort array_distinct array_max array_min
    array_slice array_position array_intersect array_except flatten struct var_map explode
    transform filter reduce range""".split()
)  # range: a table of numbers, FROM range(10)

# why the notable refused constructs are refused (anything else: not on the lists above)
REFUSED = {
    "QueryTransform": "TRANSFORM ... USING (runs a program on the worker)",
    "reflect": "reflect (Java from SQL)",
    "java_method": "java_method (Java from SQL)",
    "try_reflect": "try_reflect (Java from SQL)",
    "Create": "CREATE (DDL: tables, functions)",
    "Command": "a command (ADD JAR, ...)",
    "Set": "SET",
    "Hint": "a hint",
    "Schema": "a schema (TRANSFORM ... AS)",
    "${": "${...} (Spark variable substitution reads settings and the environment)",
}
EXPECTED = {False: "one SELECT (or WITH ... SELECT) query", True: "one condition"}
QUERIES = ("Select", "Union", "Intersect", "Except")


def check(text: str, param: str = "query", *, views: tuple[str, ...] = ("input",), condition: bool = False) -> str:
    """Spark SQL for ``text`` if it is one allowed query (or ``condition``), written by sqlglot from the
    checked tree; else a one-line :class:`ClaimedError` naming ``param`` and the refused construct.

    ``views`` are the tables a query may read (besides its own ``WITH`` names), compared case-insensitively.
    """
    problem, sql = _check(text, views, condition)
    if problem:
        from claimed_airflow.core.context import log_safe

        raise ClaimedError(str(log_safe(f"{param}: {problem}")))  # one line whatever the names hold
    return sql


def _check(text: str, views: tuple[str, ...], condition: bool) -> tuple[str, str]:
    """(why ``text`` is refused, "") or ("", the Spark SQL sqlglot writes back from the checked tree)."""
    import sqlglot
    from sqlglot import exp

    expected = EXPECTED[condition]
    if len(text) > MAX_CHARS:
        return f"expected {expected} of at most {MAX_CHARS:,} characters, got {len(text):,}", ""
    try:  # sqlglot raises ParseError, and on some input other errors (IndexError, RecursionError)
        trees = [tree for tree in sqlglot.parse(text, read="spark") if tree is not None]
    except Exception as exc:
        return f"expected {expected}: {_first_line(exc)}", ""
    if len(trees) != 1:
        return f"expected {expected}, got {len(trees)} statements", ""
    (tree,) = trees
    if (type(tree).__name__ in QUERIES) == condition:
        return f"expected {expected}, got {'a query' if condition else tree.key.upper()}", ""
    tables = {view.lower() for view in views} | {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for node in tree.walk():
        if isinstance(node, exp.Table):
            if node.args.get("db") or node.args.get("catalog") or not isinstance(node.this, (exp.Identifier, exp.Func)):
                return f"table {node.sql('spark')} (files, URLs and catalog tables) is not allowed", ""
            if isinstance(node.this, exp.Identifier) and node.name.lower() not in tables:
                return f"table {node.name} is not allowed (the query reads {', '.join(sorted(tables))})", ""
        elif type(node).__name__ not in NODES and (not isinstance(node, exp.Func) or _function(node) not in FUNCTIONS):
            return f"{_describe(node)} is not allowed", ""
    try:
        sql = tree.sql(dialect="spark", identify=True, comments=False, unsupported_level=sqlglot.ErrorLevel.RAISE)
    except Exception as exc:
        return f"expected {expected}: {_first_line(exc)}", ""
    return (f"{REFUSED['${']} is not allowed", "") if "${" in sql else ("", sql)


def _function(node) -> str:
    from sqlglot import exp

    return node.name.lower() if isinstance(node, exp.Anonymous) else node.sql_name().lower()


def _describe(node) -> str:
    from sqlglot import exp

    if isinstance(node, exp.Func):
        name = _function(node)
        return REFUSED.get(name, f"{name} (not an allowed SQL function)")
    name = type(node).__name__
    return REFUSED.get(name, f"{name.upper()} (not an allowed SQL construct)")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
