"""The registry of components: the library, entry points, configured modules and ``module:function`` references.

Users register their own components (see ``claimed-airflow create-component``) in one of three ways:

- an installed package declares an entry point in the group ``claimed_airflow.components`` naming a
  module of components;
- the setting ``components`` (``[claimed] components`` in ``airflow.cfg``, or the environment variable
  ``CLAIMED_AIRFLOW_COMPONENTS``) lists importable modules, comma separated;
- a reference ``package.module:function`` is used wherever a component name is expected (operators,
  ``claimed-airflow run``, the container entrypoint); the module is imported on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from functools import cache
from importlib.metadata import entry_points
from types import ModuleType

from claimed_airflow.core.component import ComponentSpec
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.settings import env_name, list_setting

ENTRY_POINT_GROUP = "claimed_airflow.components"
MODULES_ENV = env_name("components")  # CLAIMED_AIRFLOW_COMPONENTS
LIBRARY_PACKAGE = "claimed_airflow.components"
_REFERENCE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$", re.ASCII)
_referenced: dict[str, ComponentSpec] = {}


def _specs_of(module: ModuleType) -> dict[str, ComponentSpec]:
    found = {}
    for value in vars(module).values():
        spec = getattr(value, "spec", None)
        if isinstance(spec, ComponentSpec) and (
            getattr(value, "__module__", None) == module.__name__ or not module.__name__.startswith(LIBRARY_PACKAGE)
        ):
            found[spec.name] = spec
    return found


def _import(module: str, origin: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ClaimedError(f"{origin}: cannot import component module {module!r}: {exc}") from None


def configured_modules() -> list[str]:
    """Modules named by the ``components`` setting: ``[claimed] components``, else ``$CLAIMED_AIRFLOW_COMPONENTS``
    (comma separated; read while DAGs are parsed, so never from an Airflow Variable)."""
    return list_setting("components")


@cache
def library() -> dict[str, ComponentSpec]:
    """The components shipped in ``claimed_airflow.components`` (these get generated operators); found by name,
    like the components of entry points and settings: the core depends on no component."""
    package = importlib.import_module(LIBRARY_PACKAGE)

    found: dict[str, ComponentSpec] = {}
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.ispkg:
            found.update(_specs_of(importlib.import_module(info.name)))
    return dict(sorted(found.items()))


@cache
def components() -> dict[str, ComponentSpec]:
    """All known components by name (``category.name``), sorted: library, entry points, configured modules."""
    found = dict(library())
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.update(_specs_of(ep.load()))
    for module in configured_modules():
        found.update(_specs_of(_import(module, "setting components")))
    return dict(sorted(found.items()))


def resolve(reference: str) -> ComponentSpec:
    """The spec of ``package.module:function`` (a function decorated with ``@component``).

    A reference may come from data (a manifest for ``reproduce``, a ``trainer`` parameter): modules that run a
    program when imported (``__main__``) and the standard library (``antigravity``, ``this``, ...) are refused
    before anything is imported."""
    module_name, _, attribute = reference.partition(":")
    parts = module_name.split(".")
    if "__main__" in parts or parts[0] in sys.stdlib_module_names:
        raise ClaimedError(f"{reference}: not a component module (a __main__ module or the standard library)")
    module = _import(module_name, reference)
    function = getattr(module, attribute, None)
    if function is None:
        raise ClaimedError(f"{reference}: module {module_name!r} has no attribute {attribute!r}")
    spec = getattr(function, "spec", None)
    if not isinstance(spec, ComponentSpec):
        raise ClaimedError(f"{reference}: {attribute!r} is not a component (decorate it with @component)")
    _referenced[spec.name] = spec  # found by name too from now on (e.g. by ``reproduce``), not listed
    return spec


@cache
def _has_entry_points() -> bool:
    return bool(entry_points(group=ENTRY_POINT_GROUP))


def _library_component(name: str) -> ComponentSpec | None:
    """Library component ``category.name`` from its own module alone, when nothing may replace it (no entry points,
    no configured modules): a task runs one component and need not import the other 57 (about 0.3 s a task)."""
    category, _, module = name.partition(".")
    if not (category.isidentifier() and module.isidentifier()) or configured_modules() or _has_entry_points():
        return None
    try:
        return _specs_of(importlib.import_module(f"{LIBRARY_PACKAGE}.{category}.{module}")).get(name)
    except ImportError:
        return None  # not a library module name: the full search says what is known


def get(name: str) -> ComponentSpec:
    """The spec of component ``name`` or reference ``module:function``; a clear error otherwise."""
    if _REFERENCE.match(name):
        return resolve(name)
    if spec := _library_component(name):
        return spec
    try:
        return components().get(name) or _referenced[name]
    except KeyError:
        raise ClaimedError(f"unknown component {name!r}; known: {', '.join(components())}") from None
