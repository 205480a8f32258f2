"""Airflow hooks: connections to the services claimed components talk to.

The connection forms are declared once, in the provider info (``conn-fields`` and ``ui-field-behaviour``,
read by Airflow 3.2 and later); :func:`with_connection_form` gives each hook the
``get_connection_form_widgets`` / ``get_ui_field_behaviour`` that serve the same declaration to Airflow
2.11 to 3.1, which ask the hook class.
"""

from __future__ import annotations

from typing import Any, TypeVar

H = TypeVar("H", bound=type)


def _connection_type(conn_type: str) -> dict[str, Any]:
    from claimed_airflow import get_provider_info

    return next(c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type)


def ui_field_behaviour(conn_type: str) -> dict[str, Any]:
    """The ``ui-field-behaviour`` of a connection type, with the keys hooks return (``hidden_fields``, ...)."""
    behaviour = _connection_type(conn_type).get("ui-field-behaviour", {})
    return {
        "hidden_fields": behaviour.get("hidden-fields", []),
        "relabeling": behaviour.get("relabeling", {}),
        "placeholders": behaviour.get("placeholders", {}),
    }


def connection_form_widgets(conn_type: str) -> dict[str, Any]:
    """The ``conn-fields`` of a connection type as the WTForms fields of Airflow 2.11 to 3.1 forms."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, IntegerField, PasswordField, StringField

    widgets = {}
    for name, field in _connection_type(conn_type).get("conn-fields", {}).items():
        schema = field["schema"]
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        label, default = lazy_gettext(field["label"]), schema.get("default")
        if schema.get("format") == "password":
            widgets[name] = PasswordField(label, widget=BS3PasswordFieldWidget())
        elif "boolean" in types:
            widgets[name] = BooleanField(label, default=default)
        elif "integer" in types:
            widgets[name] = IntegerField(label, widget=BS3TextFieldWidget(), default=default)
        else:
            widgets[name] = StringField(label, widget=BS3TextFieldWidget(), default=default)
    return widgets


def with_connection_form(hook_class: H) -> H:
    """Class decorator: the hook's connection form for Airflow 2.11 to 3.1 (later ones read the provider info),
    from the declaration of its ``conn_type``. Set on the class itself: Airflow 2.11 looks for the two
    classmethods in the hook class's own ``__dict__``, so a base class or mixin would not do."""

    def get_connection_form_widgets(cls) -> dict[str, Any]:
        return connection_form_widgets(cls.conn_type)

    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return ui_field_behaviour(cls.conn_type)

    hook_class.get_connection_form_widgets = classmethod(get_connection_form_widgets)
    hook_class.get_ui_field_behaviour = classmethod(get_ui_field_behaviour)
    return hook_class
