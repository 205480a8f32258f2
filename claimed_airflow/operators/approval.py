"""A reviewer signs off a model before it is deployed: the standard provider's human-in-the-loop ApprovalOperator.

``ModelApprovalOperator`` (Airflow 3.1+) shows the model's accuracy, fairness and robustness numbers and
links to the confusion matrix, the fairness plot and the LIME overlays in the Airflow UI (*Required
Actions*), then waits for a reviewer without holding a worker slot. *Approve* lets the tasks after it
run; *Reject* skips them; no answer within ``response_timeout`` fails the task (not retried). With
``required`` false it passes at once, so one DAG serves both. On Airflow 2.11/3.0 (no human-in-the-loop)
a task that requires approval fails, naming the version it needs.

Every value on the page (section titles, metric names and values, which carry class labels, link names
and URLs) comes from files or templates: it is shown as plain text on one line (control, format and
line-separator characters as ``U+XXXX``, every ASCII punctuation character backslash-escaped), links
only with a URL scheme other than ``javascript``/``data``/``vbscript`` and with credentials redacted.
The subject (plain text in the UI) gets the same treatment of control characters. ``body``, the DAG
author's own Markdown, is kept as given above the tables.

The task retries once by default (``retries=1``, 10 s apart): an answer given while the executor's
event for the process that asked is still in flight resumes the task too early, and Airflow 3.3.2's
scheduler then fails that try (apache/airflow#67287, #72716); the retry asks again.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from claimed_airflow import version_compat
from claimed_airflow.core.types import coerce

HITL_VERSION = "3.1.0"
HAS_HITL = version_compat.AIRFLOW_V_3_1_PLUS
# CommonMark lets a backslash escape every ASCII punctuation character, and then it is never markup
_MARKDOWN = str.maketrans({c: f"\\{c}" for c in string.punctuation})
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp"}  # control, format (bidi overrides, zero-width), line/paragraph separators
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_SCRIPT_SCHEMES = {"javascript", "data", "vbscript"}


def _visible(text: str) -> str:
    """``text`` on one line: control, format and line-separator characters shown as ``U+XXXX``."""
    return "".join(f"U+{ord(c):04X}" if unicodedata.category(c) in _INVISIBLE else c for c in text)


def _text(value: Any) -> str:
    """Markdown of a value from a file or a template: plain text on one line, never markup."""
    if isinstance(value, float):
        value = f"{value:.4g}"
    return _visible(str(value)).translate(_MARKDOWN)


def _url(uri: str) -> str | None:
    """A link destination for ``uri`` (percent-encoded, credentials redacted); None for a script scheme."""
    from urllib.parse import quote

    from claimed_airflow.core import storage

    uri = storage.redact(storage.normalize(str(uri)))
    if "://" not in uri:
        uri = f"file://{uri}"
    scheme, _, rest = uri.partition("://")
    if not _SCHEME.fullmatch(scheme.lower()) or scheme.lower() in _SCRIPT_SCHEMES:
        return None
    return f"{scheme}://{quote(rest, safe='/:@')}"


def _link(name: str, uri: str) -> str:
    url = _url(uri)
    return f"- [{_text(name)}](<{url}>)" if url else f"- {_text(name)}: {_text(uri)}"


def approval_body(sections: dict[str, dict], links: dict[str, str], note: str = "") -> str:
    """The Markdown a reviewer sees: one table of values per section and one link per artifact."""
    lines = [note, ""] if note else []
    for title, values in sections.items():
        if not values:
            continue
        lines += [f"**{_text(title)}**", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {_text(k)} | {_text(v)} |" for k, v in values.items() if not isinstance(v, (dict, list))]
        lines.append("")
    if links:
        lines += ["**Artifacts**", ""]
        lines += [_link(name, uri) for name, uri in links.items() if uri]
    return "\n".join(lines).strip() + "\n"


def read_sections(metrics: str | None, fairness: str | None, robustness: str | None) -> dict[str, dict]:
    """The metric JSON files (any URI) as flat ``name: value`` dicts, one per section."""
    from claimed_airflow.components.deploy.condition_blessing import flatten
    from claimed_airflow.core import storage

    sections = {}
    for title, uri in (("Accuracy", metrics), ("Fairness", fairness), ("Robustness", robustness)):
        if uri:
            data = storage.read_json(str(uri))
            sections[title] = flatten(data) if isinstance(data, dict) else {}
    return sections


def _required(operator) -> bool:
    return coerce("required", operator.required, bool)


_DOC_PARAMS = """
    :param required: Whether a reviewer must approve (a template, e.g. ``"{{ params.require_approval }}"``);
        false: the task passes at once.
    :type required: bool | str
    :param metrics: URI of the metrics JSON (``metric.confusion_matrix``'s ``metrics``).
    :type metrics: str | None
    :param fairness: URI of the fairness JSON (``metric.fairness``'s ``metrics``).
    :type fairness: str | None
    :param robustness: URI of the robustness JSON (``metric.robustness``'s ``metrics``).
    :type robustness: str | None
    :param links: Artifacts to link, ``{"confusion matrix": uri, ...}``.
    :type links: dict | None
"""

if HAS_HITL:
    import inspect

    from airflow.providers.standard.exceptions import HITLTimeoutError
    from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator

    from claimed_airflow.version_compat import AirflowFailException

    # standard providers of Airflow 3.1 (before response_timeout) wait up to execution_timeout
    _RESPONSE_TIMEOUT = "response_timeout" in inspect.signature(HITLOperator.__init__).parameters

    class ApprovalTimedOut(HITLTimeoutError, AirflowFailException):
        """No answer within ``response_timeout``: the task fails without a retry (the retry is for Airflow's race)."""

    class ModelApprovalOperator(ApprovalOperator):
        __doc__ = (
            "A reviewer approves (deploy) or rejects (skip what follows) a model in the Airflow UI.\n"
            + _DOC_PARAMS
            + "\n    Other arguments (``subject``, ``response_timeout``, ``assigned_users``, ``notifiers``) are "
            "the standard provider's ApprovalOperator's.\n"
        )

        template_fields: Sequence[str] = (
            *ApprovalOperator.template_fields,
            "required",
            "metrics",
            "fairness",
            "robustness",
            "links",
        )
        human_approval = True
        ui_color = "#fde7c8"

        def __init__(
            self,
            *,
            required: bool | str = True,
            metrics: Any = None,
            fairness: Any = None,
            robustness: Any = None,
            links: dict[str, Any] | None = None,
            subject: str = "Approve deploying this model?",
            **kwargs: Any,
        ) -> None:
            if not _RESPONSE_TIMEOUT and "response_timeout" in kwargs:
                kwargs["execution_timeout"] = kwargs.pop("response_timeout")
            elif "retries" not in kwargs and "retries" not in (kwargs.get("default_args") or {}):
                # see the module's docstring: an answer that races Airflow's executor
                kwargs.update(retries=1, retry_delay=kwargs.get("retry_delay", timedelta(seconds=10)))
            super().__init__(subject=subject, **kwargs)
            self.required = required
            self.metrics = metrics
            self.fairness = fairness
            self.robustness = robustness
            self.links = links or {}

        def execute(self, context: Any) -> Any:
            if not _required(self):
                self.log.info("approval is not required (required=%r); the tasks after it run", self.required)
                return {"chosen_options": [self.APPROVE], "required": False}
            sections = read_sections(self.metrics, self.fairness, self.robustness)
            self.body = approval_body(sections, self.links, note=self.body or "")
            self.subject = _visible(str(self.subject))
            self.log.info("waiting for a reviewer's decision: %s", json.dumps(list(sections)))
            return super().execute(context)

        def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
            try:
                return super().execute_complete(context, event)
            except HITLTimeoutError as exc:
                raise ApprovalTimedOut(*exc.args) from None

else:
    from claimed_airflow.version_compat import BaseOperator

    class ModelApprovalOperator(BaseOperator):  # type: ignore[no-redef]
        __doc__ = "A reviewer's approval before deployment; needs Airflow 3.1+ (human-in-the-loop).\n" + _DOC_PARAMS

        template_fields: Sequence[str] = ("required", "metrics", "fairness", "robustness", "links")
        human_approval = True

        def __init__(
            self,
            *,
            required: bool | str = True,
            metrics: Any = None,
            fairness: Any = None,
            robustness: Any = None,
            links: dict[str, Any] | None = None,
            subject: str | None = None,
            response_timeout: Any = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            self.required = required
            self.metrics = metrics
            self.fairness = fairness
            self.robustness = robustness
            self.links = links or {}

        def execute(self, context: Any) -> Any:
            if not _required(self):
                return {"chosen_options": ["Approve"], "required": False}
            from claimed_airflow.version_compat import AirflowFailException

            raise AirflowFailException(
                f"require_approval: a reviewer's approval needs Airflow {HITL_VERSION} or newer (human-in-the-loop "
                f"operators of the standard provider); this is Airflow {version_compat.AIRFLOW_VERSION}"
            )
