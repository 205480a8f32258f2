"""The SQL allow-list (``core.sql.check``): the repository's queries pass, hostile constructs are refused in
one line, and Hypothesis-built conditions are accepted exactly when every part of them is allowed.

The same refusals against real Spark (the shell command of issue 30 not run, no file written) are in
``tests/test_spark.py::test_sql_cannot_run_a_program_or_read_the_environment``.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimed_airflow.components.filter.spark_cohort_split import cohort_query
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.sql import check

pytest.importorskip("sqlglot", reason="needs the spark extra")

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None)

# every query and condition the repository's DAGs, docs and tests run
QUERIES = [
    "SELECT site, sensor, date_trunc('day', time) AS day, avg(value) AS value, count(*) AS readings "
    "FROM input GROUP BY site, sensor, date_trunc('day', time)",  # dags/spark_etl.py
    "SELECT sensor, count(*) AS n, avg(value) AS mean FROM input WHERE site = 'plant-a' GROUP BY sensor",
    "SELECT date, count(*) AS n FROM input GROUP BY date",  # docs/guides/spark.md
    "SELECT count(*) AS n FROM range(100000000) a CROSS JOIN range(100000) b WHERE (a.id * b.id) % 7 = 3",
    "WITH daily AS (SELECT sensor, avg(value) AS v FROM input GROUP BY sensor) SELECT * FROM daily ORDER BY v;",
    "SELECT sensor, value, rank() OVER (PARTITION BY sensor ORDER BY value DESC) AS r FROM input LIMIT 10",
    "SELECT a.sensor FROM input a JOIN input b ON a.sensor = b.sensor UNION ALL SELECT 'x'",
]
CONDITIONS = [
    "label IS NOT NULL AND Modality IN ('CR', 'DX')",  # the flagship's default cohort
    "label IS NOT NULL AND Modality IN ('CR', 'DX') AND PatientAge >= 18",
    "label IS NOT NULL AND (PatientAge IS NULL OR PatientAge >= 40)",
    "label IS NOT NULL",
    "label = 'x'",
    "true",
    "lower(BodyPartExamined) LIKE 'chest%' AND coalesce(PatientSex, '') <> 'O'",
    "PatientAge BETWEEN 18 AND 65 AND year(to_date(StudyDate, 'yyyyMMdd')) >= 2020",
]


@pytest.mark.parametrize("query", QUERIES)
def test_the_repositorys_queries_pass(query):
    sql = check(query)
    assert check(sql) == sql  # what runs is checked SQL: written back, it passes unchanged


@pytest.mark.parametrize("where", CONDITIONS)
def test_the_repositorys_conditions_pass(where):
    sql = cohort_query(where, "SOPInstanceUID", 0.2, 42, "split")
    assert check(sql, "where") == sql and "`SOPInstanceUID`" in sql


REFUSED = [
    # script transformation: runs a program on the worker (issue 30)
    (
        "SELECT * FROM input WHERE EXISTS (SELECT TRANSFORM(label) USING 'sh -c \"id > F; cat\"' AS (x) FROM input)",
        r"TRANSFORM \.\.\. USING \(runs a program on the worker\)",
    ),
    ("FROM input SELECT TRANSFORM(a) USING 'cat'", r"TRANSFORM \.\.\. USING"),
    ("SELECT MAP(a) USING 'cat' FROM input", "expected one SELECT"),  # sqlglot cannot parse it
    ("SELECT REDUCE(a) USING 'cat' FROM input", "expected one SELECT"),
    ("SELECT java_method('java.lang.System', 'getenv', 'HOME') FROM input", r"java_method \(Java from SQL\)"),
    ("SELECT `reflect`('java.lang.System', 'exit', 1) FROM input", r"reflect \(Java from SQL\)"),
    # files, URLs, other tables
    ("SELECT * FROM parquet.`/etc`", r"table parquet\.`/etc` \(files, URLs and catalog tables\)"),
    ("SELECT * FROM csv.`http://example.org/x.csv`", "table csv"),
    ("SELECT * FROM read_csv('/etc/passwd')", r"read_csv \(not an allowed SQL function\)"),
    ("SELECT * FROM read_parquet('s3://b/k')", "read_parquet"),
    ("SELECT * FROM 'x.csv'", "table x.csv is not allowed"),
    ("SELECT * FROM IDENTIFIER('input')", "identifier"),
    ("SELECT * FROM global_temp.v", "table global_temp.v"),
    ("SELECT * FROM other", r"table other is not allowed \(the query reads input\)"),
    ("SELECT input_file_name() FROM input", "input_file_name"),
    ("SELECT * FROM `a\nforged: line`", r"table a\\nforged: line"),  # names in errors stay on one line
    ("SELECT db.mean(a) FROM input", "DOT"),
    # statements other than one SELECT
    ("CREATE TEMPORARY FUNCTION f AS 'x.Y' USING JAR '/tmp/a.jar'", "got CREATE"),
    ("ADD JAR /tmp/a.jar", "got COMMAND"),
    ("SET spark.sql.runSQLOnFiles=true", "got SET"),
    ("INSERT OVERWRITE DIRECTORY '/tmp/x' SELECT * FROM input", "got INSERT"),
    ("DROP TABLE input", "got DROP"),
    ("SELECT 1; SELECT 2", "got 2 statements"),
    ("", "got 0 statements"),
    ("-- nothing", "got 0 statements"),
    ("SELEC * FROM input", "expected one SELECT"),
    ("SELECT 'x' || '${env:AWS_SECRET_ACCESS_KEY}' FROM input", r"\$\{\.\.\.\} \(Spark variable substitution"),
    ("SELECT /*+ REPARTITION(1000000) */ * FROM input", "a hint"),
    ("SELECT * FROM VALUES (1)", "VALUES"),
    ("SELECT ${x} FROM input", "PARAMETER"),
    ("SELECT 1 " + "+ 1 " * 30_000, "at most 100,000 characters"),
]


@pytest.mark.parametrize(("query", "message"), REFUSED)
def test_hostile_queries_are_refused_in_one_line(query, message):
    with pytest.raises(ClaimedError, match=f"^query: .*{message}") as caught:
        check(query)
    assert "\n" not in str(caught.value)


def test_a_condition_is_one_expression():
    for where, message in [
        ("true) UNION (SELECT * FROM input", "^where: expected one condition: "),
        ("a = 1) OR (1 = 1", "^where: expected one condition: "),
        ("SELECT * FROM input", "^where: expected one condition, got a query"),
        ("label = 'x'; DROP TABLE t", "^where: expected one condition, got 2 statements"),
        ("EXISTS (SELECT TRANSFORM(label) USING 'id' FROM input)", r"^where: TRANSFORM \.\.\. USING"),
        ("a IN (SELECT a FROM parquet.`/etc`)", "^where: table parquet"),
    ]:
        with pytest.raises(ClaimedError, match=message):
            cohort_query(where, "k", 0.2, 1, "split")
    # a comment cannot swallow the closing parenthesis: the condition is written back without it
    assert cohort_query("a = 1 --", "k", 0.2, 1, "split").endswith("AND (`a` = 1)")


def test_view_names_and_with_names_are_the_readable_tables():
    assert "FROM `readings`" in check("SELECT * FROM readings", views=("readings",))
    assert "FROM `Input`" in check("SELECT * FROM Input")  # Spark compares table names case-insensitively
    with pytest.raises(ClaimedError, match=r"^query: table input is not allowed \(the query reads readings\)"):
        check("SELECT * FROM input", views=("readings",))


# every function on the allow-list, as Spark spells it (sqlglot maps some names: var_samp -> variance)
AGGREGATES = """count(*); count_if(v > 1); sum(v); avg(v); mean(v); min(v); max(v); median(v); stddev(v); stddev_pop(v);
stddev_samp(v); variance(v); var_pop(v); var_samp(v); corr(v, w); covar_pop(v, w); covar_samp(v, w); first(v);
last(v); any_value(v); percentile_approx(v, 0.5); percentile(v, 0.5); approx_count_distinct(v); min_by(s, v);
max_by(s, v); collect_list(v); collect_set(v); bool_and(v > 0); bool_or(v > 0)"""
WINDOWS = """row_number(); rank(); dense_rank(); percent_rank(); cume_dist(); ntile(2); lag(v); lead(v, 1, 0);
first_value(v); last_value(v); nth_value(v, 1)"""
SCALARS = """abs(v); ceil(v); floor(v); round(v, 1); bround(v, 1); sqrt(v); cbrt(v); exp(v); ln(v); log(10, v); log2(v);
power(v, 2); sign(v); greatest(v, w); least(v, w); pmod(n, 2); mod(n, 2); n DIV 2; coalesce(v, w); nullif(v, w);
nvl(v, w); nvl2(v, w, 1); if(v > 1, 1, 0); isnull(v); isnotnull(v); isnan(v); nanvl(v, 0); try_divide(v, 0);
try_add(n, 1); try_subtract(n, 1); try_multiply(n, 2); CAST(n AS DECIMAL(10, 2)); try_cast(s AS INT); lower(s);
upper(s); length(s); trim(s); substring(s, 1, 2); left(s, 2); right(s, 2); concat(s, s); concat_ws('-', s, s);
replace(s, 'a', 'b'); translate(s, 'a', 'b'); lpad(s, 5, '0'); split(s, 'b'); split_part(s, 'b', 1);
regexp_extract(s, 'a(b)', 1); regexp_replace(s, 'a', 'b'); s RLIKE 'a'; startswith(s, 'a'); endswith(s, 'a');
contains(s, 'a'); instr(s, 'b'); initcap(s); reverse(s); ascii(s); chr(65); format_number(v, 2); levenshtein(s,
'abc'); soundex(s); md5(s); sha1(s); sha2(s, 256); hex(s); unhex('41'); base64(s); unbase64('YQ==');
date_trunc('day', t); trunc(d, 'MM'); to_date(s2); to_timestamp(s2, 'yyyy-MM-dd'); year(t); month(t); day(t);
dayofmonth(t); dayofweek(t); dayofyear(t); hour(t); minute(t); second(t); quarter(t); weekofyear(t); date_add(d,
1); datediff(d, d); months_between(t, t); add_months(d, 1); last_day(d); next_day(d, 'Mon'); extract(YEAR FROM t);
date_part('year', t); date_format(t, 'yyyy'); unix_timestamp(t); from_unixtime(n); make_date(2020, 1, 1);
timestamp_seconds(n); size(array(1, 2)); array_contains(array(1, 2), 1); element_at(array(1, 2), 1);
array_join(array('a', 'b'), ','); sort_array(array(2, 1)); array_distinct(array(1, 1)); array_max(array(1, 2));
array_min(array(1, 2)); slice(array(1, 2, 3), 1, 2); array_position(array(1, 2), 2); array_intersect(array(1),
array(1)); array_except(array(1), array(2)); struct(v, w); map('a', v); transform(array(1, 2), x -> x + 1);
filter(array(1, 2), x -> x > 1); exists(array(1, 2), x -> x > 1); aggregate(array(1, 2), 0, (acc, x) -> acc + x);
CASE WHEN v > 1 THEN 'a' ELSE 'b' END; EXISTS (SELECT 1 FROM input); flatten(array(array(1)));
d = DATE '2020-01-02'"""
CLOCK = ["current_date()", "current_timestamp()"]  # allowed, but not the same on two runs
EXPLODE = "SELECT explode(array(1, 2)) AS x FROM range(2)"


def calls(text: str) -> list[str]:
    return [call.strip() for call in text.split(";")]


def select(items: list[str], over: str = "") -> str:
    return "SELECT " + ", ".join(f"{c}{over} AS c{i}" for i, c in enumerate(items)) + " FROM input"


SELECTS = [select(calls(AGGREGATES)), select(calls(WINDOWS), " OVER (ORDER BY v)"), select(calls(SCALARS))]


def test_every_allowed_function_has_a_spark_spelling_and_passes():
    from sqlglot import exp, parse_one

    from claimed_airflow.core.sql import FUNCTIONS, _function

    used = set()
    for query in [*SELECTS, select(CLOCK), EXPLODE]:
        check(query)
        used |= {_function(n) for n in parse_one(query, read="spark").find_all(exp.Func) if n.key not in ("and", "or")}
    assert used == FUNCTIONS  # no function on the list without an example, none used that is not on it


def test_checked_sql_gives_the_same_rows_on_spark(tmp_path):
    """Both backends run the SQL sqlglot writes back: on real Spark it gives what the query as written gives."""
    pytest.importorskip("pyspark", reason="needs the spark extra")
    import pandas as pd

    from claimed_airflow.core import spark as sp

    frame = pd.DataFrame(
        {
            "v": [1.5, 2.5], "w": [0.5, 3.0], "n": [3, 4], "s": ["abc", "abd"], "s2": ["2020-01-02", "2021-03-04"],
            "t": pd.to_datetime(["2020-01-02 03:04:05", "2021-03-04 05:06:07"]),
            "d": pd.to_datetime(["2020-01-02", "2021-03-04"]).date,
        }
    )  # fmt: skip
    frame.to_parquet(tmp_path / "t.parquet", coerce_timestamps="us")
    spark = sp.session()
    sp.read(spark, tmp_path / "t.parquet").createOrReplaceTempView("input")
    for query in [*SELECTS, EXPLODE]:
        assert spark.sql(check(query)).collect() == spark.sql(query).collect(), query


# -- Hypothesis: conditions built from allowed and forbidden parts ----------------------------------

COLUMNS = ["label", "Modality", "PatientAge", "`weird name`", "`a``b`", "input.label"]
SAFE_CALLS = [
    "abs({})", "coalesce({}, {})", "upper({})", "lower({})", "length({})", "round({}, 2)", "concat({}, {})",
    "substr({}, 1, 2)", "greatest({}, {})", "sha2({}, 256)", "date_trunc('day', {})", "year({})",
    "if({}, {}, {})", "nvl({}, {})", "CAST({} AS STRING)", "regexp_extract({}, 'a(b)', 1)", "{} RLIKE '^x'",
    "CASE WHEN {} THEN {} ELSE {} END", "({} IN ({}, {}))", "({} BETWEEN {} AND {})", "NOT ({})",
    "({} IS NULL)", "EXISTS (SELECT 1 FROM input WHERE {})", "({} = (SELECT max({}) FROM input))",
]  # fmt: skip
FORBIDDEN_CALLS = [
    "reflect('java.lang.System', 'getenv', {})", "java_method('java.lang.Thread', 'sleep', {})",
    "try_reflect('java.lang.System', 'exit', {})", "input_file_name()", "current_user()", "assert_true({})",
    "raise_error({})", "xpath({}, '/a')", "aes_decrypt({}, 'k')",
    "EXISTS (SELECT TRANSFORM({}) USING 'sh -c id' AS (x) FROM input)",
    "EXISTS (SELECT * FROM read_csv('/etc/passwd') WHERE {})", "({} IN (SELECT a FROM parquet.`/etc`))",
    "({} IN (SELECT a FROM json.`http://example.org/`))", "({} IN (SELECT a FROM other))",
    "('${env:HOME}' = {})", "(SELECT a FROM global_temp.v WHERE {}) IS NULL",
]  # fmt: skip


def spark_string(text: str) -> str:
    """A Spark SQL string literal (backslash escapes, as Spark reads them)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# a leaf is (sql, forbidden): a string holding ${ is forbidden (Spark would substitute it)
LEAVES = st.one_of(
    st.sampled_from(COLUMNS).map(lambda c: (c, False)),
    st.integers(-(10**12), 10**12).map(lambda n: (str(n), False)),
    st.sampled_from(["NULL", "true", "1.5", "DATE '2020-01-01'"]).map(lambda s: (s, False)),
    st.text(max_size=12).map(lambda t: (spark_string(t), "${" in t)),
)


def combine(children):
    def build(args):
        template, forbidden, parts = args
        count = template.count("{}")
        values = (parts * count)[:count]
        pieces = template.split("{}")
        sql = pieces[0] + "".join(value + piece for (value, _), piece in zip(values, pieces[1:], strict=True))
        return sql, forbidden or any(bad for _, bad in values)

    calls = st.one_of(
        st.sampled_from(SAFE_CALLS).map(lambda t: (t, False)), st.sampled_from(FORBIDDEN_CALLS).map(lambda t: (t, True))
    )
    operators = st.sampled_from(["({} AND {})", "({} OR {})", "({} + {})", "({} >= {})", "({} <> {})", "({} || {})"])
    return st.one_of(
        st.tuples(calls, st.lists(children, min_size=1, max_size=3)).map(lambda a: build((a[0][0], a[0][1], a[1]))),
        st.tuples(operators, st.lists(children, min_size=2, max_size=2)).map(lambda a: build((a[0], False, a[1]))),
    )


CONDITION_TREES = st.recursive(LEAVES, combine, max_leaves=12)


@FUZZ
@given(CONDITION_TREES)
def test_fuzz_conditions_are_accepted_exactly_when_every_part_is_allowed(tree):
    where, forbidden = tree
    try:
        sql = cohort_query(where, "k", 0.2, 1, "split")
    except ClaimedError as exc:
        assert forbidden, f"an allowed condition was refused: {where!r}: {exc}"
        assert re.match(r"^where: ", str(exc)) and "\n" not in str(exc)
    else:
        assert not forbidden, f"a forbidden condition passed: {where!r}"
        assert check(sql, "where") == sql


def spark_functions() -> list[str]:
    from sqlglot.dialects.spark import Spark

    return sorted(Spark.parser_class.FUNCTIONS)  # the ~700 function names sqlglot's Spark parser knows


UNSAFE = {"reflect", "java_method", "try_reflect", "read_csv", "read_parquet", "read_json", "input_file_name"}


@FUZZ
@given(st.one_of(st.sampled_from(spark_functions()), st.sampled_from(sorted(UNSAFE))), st.lists(LEAVES, max_size=4))
def test_fuzz_every_function_sqlglot_knows(name, args):
    """Any function sqlglot's Spark dialect knows, with 0 to 4 arguments: accepted only when it is on the
    allow-list (as sqlglot names it), refused in one line otherwise; never another error."""
    from sqlglot import exp, parse_one

    from claimed_airflow.core.sql import FUNCTIONS, _function

    text = f"{name}({', '.join(sql for sql, _ in args)}) IS NULL"
    try:
        sql = check(text, "where", condition=True)
    except ClaimedError as exc:
        assert str(exc).startswith("where: ") and "\n" not in str(exc)
    else:
        assert name.lower() not in UNSAFE
        assert {_function(n) for n in parse_one(sql, read="spark").find_all(exp.Func) if n.key != "and"} <= FUNCTIONS


TOKENS = [
    "SELECT", "*", "FROM", "input", "WHERE", "TRANSFORM", "(", ")", "USING", "'cat'", "MAP", "REDUCE", "AS",
    "x", ",", "reflect", "java_method", "'java.lang.System'", "ADD", "JAR", "SET", "CREATE", "FUNCTION",
    "parquet", ".", "`/etc`", "read_csv", "'${env:HOME}'", "--", "/*", "*/", "/*+", ";", "'", "`", '"', "\\",
    "\n", "\r", "EXISTS", "UNION", "WITH", "t", "1", "=", "AND", "LATERAL", "VIEW", "INSERT", "DIRECTORY",
]  # fmt: skip


@FUZZ
@given(st.one_of(st.text(max_size=80), st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join)))
def test_fuzz_any_text_is_refused_or_passes_as_checked_sql(text):
    """Random text and soups of hostile tokens: never an error other than ClaimedError, and never SQL that
    runs unchecked (an accepted query comes back as sqlglot writes it, and that passes the check again)."""
    for condition in (False, True):
        try:
            sql = check(text, "q", condition=condition)
        except ClaimedError as exc:
            assert str(exc).startswith("q: ") and "\n" not in str(exc)
        else:
            assert check(sql, "q", condition=condition) == sql
            code = re.sub(r"`(?:[^`]|``)*`|'(?:[^'\\]|\\.)*'", " ", sql)  # quoted names and strings out
            assert not re.search(r"(?i)\b(USING|JAR|reflect|java_method|read_csv)\b|\$\{", code), sql


@settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["(", "NOT ", "-", "abs("]), st.integers(200, 5000))
def test_fuzz_deep_nesting_is_a_one_line_error_or_checked(opener, depth):
    closer = {"(": ")", "NOT ": "", "-": "", "abs(": ")"}[opener]
    text = opener * depth + "1" + closer * depth
    try:
        sql = check(text, "where", condition=True)
    except ClaimedError as exc:
        assert str(exc).startswith("where: ") and "\n" not in str(exc)
    else:
        assert check(sql, "where", condition=True) == sql
