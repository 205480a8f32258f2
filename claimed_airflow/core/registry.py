"""The registry of components: every module under ``claimed_airflow.components`` plus entry points."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from importlib.metadata import entry_points

from claimed_airflow.core.component import ComponentSpec
from claimed_airflow.core.errors import ClaimedError

ENTRY_POINT_GROUP = "claimed_airflow.components"


@cache
def components() -> dict[str, ComponentSpec]:
    """All known components by name (``category.name``), sorted."""
    import claimed_airflow.components as package

    found: dict[str, ComponentSpec] = {}
    modules = [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
        if not info.ispkg
    ]
    modules += [ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)]
    for module in modules:
        for value in vars(module).values():
            spec = getattr(value, "spec", None)
            if isinstance(spec, ComponentSpec) and getattr(value, "__module__", None) == module.__name__:
                found[spec.name] = spec
    return dict(sorted(found.items()))


def get(name: str) -> ComponentSpec:
    """The spec of component ``name``; a clear error lists the known names otherwise."""
    try:
        return components()[name]
    except KeyError:
        raise ClaimedError(f"unknown component {name!r}; known: {', '.join(components())}") from None
