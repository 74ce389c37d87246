"""The API reference says what the code does: it documents exactly the public surface (the
``__all__`` of the packages and of the public modules, nothing from a private module), every
dataclass field is documented, and every default a numpydoc Parameters section states ("float,
default 0.1") is the signature's."""

from __future__ import annotations

import ast
import builtins
import dataclasses
import importlib
import inspect
import pathlib
import pkgutil
import re

import pytest

import bayesdrop

# modules the API reference documents beside the packages
EXTRA_MODULES = [
    "bayesdrop.predict.distributed",
    "bayesdrop.functional.batched",
    "bayesdrop.pyro",
    "bayesdrop.cli",
]


def public_objects() -> list[tuple[str, object]]:
    """(name, object) for every name in ``__all__`` of bayesdrop, its packages and EXTRA_MODULES."""
    packages = [i.name for i in pkgutil.walk_packages(bayesdrop.__path__, "bayesdrop.") if i.ispkg]
    found: dict[int, tuple[str, object]] = {}
    for module_name in ["bayesdrop", *packages, *EXTRA_MODULES]:
        if any(part.startswith("_") for part in module_name.split(".")):
            continue
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not inspect.ismodule(obj):
                found.setdefault(id(obj), (f"{module_name}.{name}", obj))
    return sorted(found.values(), key=lambda item: item[0])


def section(doc: str | None, title: str) -> str | None:
    """The body of a numpydoc section, or None."""
    match = re.search(rf"^{title}\n-+\n(.*?)(?=^\S[^\n]*\n-+\n|\Z)", doc or "", re.S | re.M)
    return match.group(1) if match else None


def entries(body: str) -> dict[str, str]:
    """name -> type line of the entries of a section (``a, b : float`` documents both)."""
    out = {}
    for match in re.finditer(r"^(\*{0,2}\w+(?:\s*,\s*\w+)*)\s*(?::\s*(.*))?$", body, re.M):
        for name in match.group(1).split(","):
            out[name.strip().lstrip("*")] = match.group(2) or ""
    return out


DEFAULT = re.compile(r"(?:^|,\s*)default[:=]?\s+(.+?)\s*$")


def same(text: str, value: object) -> bool:
    text = text.strip("`").strip()
    try:
        literal = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return getattr(builtins, text, object()) is value or text in (repr(value), str(value))
    return literal == value and not isinstance(literal, bool) ^ isinstance(value, bool)


def documented_callables():
    for name, obj in public_objects():
        if inspect.isclass(obj):
            yield name, inspect.getdoc(obj), obj
            for attr, member in vars(obj).items():
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if not attr.startswith("_") and inspect.isfunction(member):
                    yield f"{name}.{attr}", inspect.getdoc(member), member
        elif callable(obj):
            yield name, inspect.getdoc(obj), obj


def stated_defaults():
    for name, doc, func in documented_callables():
        body = section(doc, "Parameters")
        if body is None:
            continue
        for param, type_line in entries(body).items():
            match = DEFAULT.search(type_line)
            if match:
                yield pytest.param(func, param, match.group(1), id=f"{name}-{param}")


@pytest.mark.parametrize(("func", "param", "text"), list(stated_defaults()))
def test_stated_default_is_the_signature_default(func, param, text):
    parameter = inspect.signature(func).parameters.get(param)
    assert parameter is not None, f"no parameter {param!r}"
    assert parameter.default is not inspect.Parameter.empty, f"{param} has no default"
    assert same(text, parameter.default), f"documented default {text}, signature {parameter}"


PUBLIC_DATACLASSES = [
    pytest.param(obj, id=name)
    for name, obj in public_objects()
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj)
]


@pytest.mark.parametrize("cls", PUBLIC_DATACLASSES)
def test_every_dataclass_field_is_documented(cls):
    documented = set(entries(section(inspect.getdoc(cls), "Attributes") or ""))
    fields = [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]
    assert [name for name in fields if name not in documented] == []


def test_the_checks_see_the_api():
    assert len(PUBLIC_DATACLASSES) >= 20
    assert len(list(stated_defaults())) >= 50


API_PAGES = pathlib.Path(__file__).resolve().parents[1] / "docs" / "api"


def _resolve(path: str) -> object:
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr)
        return obj
    raise AssertionError(path)


def documented_entries() -> tuple[dict[str, object], set[str]]:
    """``path -> object`` of every autosummary entry of docs/api, and the paths of every
    ``.. data::`` entry (each read under the page's ``currentmodule`` at that point)."""
    objects: dict[str, object] = {}
    data: set[str] = set()
    for page in sorted(API_PAGES.glob("*.rst")):
        current, listing = "bayesdrop", False
        for line in page.read_text().splitlines():
            if match := re.match(r"\.\. currentmodule:: (\S+)", line):
                current, listing = match[1], False
            elif match := re.match(r"\.\. data:: (\S+)", line):
                data.add(f"{current}.{match[1]}")
                listing = False
            elif line.startswith(".. autosummary::"):
                listing = True
            elif listing and line.startswith("   ") and not line.strip().startswith(":"):
                objects[f"{current}.{line.strip()}"] = _resolve(f"{current}.{line.strip()}")
            elif listing and line.strip() and not line.startswith("   "):
                listing = False
    return objects, data


def test_the_reference_documents_exactly_the_public_surface():
    objects, data = documented_entries()
    public = public_objects()
    callables = {id(obj) for _, obj in public if callable(obj)}
    constants = {name for name, obj in public if not callable(obj)}
    found = {id(obj) for obj in objects.values()}
    assert [n for n, obj in public if callable(obj) and id(obj) not in found] == []
    assert [p for p, obj in objects.items() if id(obj) not in callables] == []
    assert sorted(constants - data) == [] and sorted(data - constants) == []
    # nothing documented lives under a private module path
    assert [p for p in [*objects, *data] if any(s.startswith("_") for s in p.split("."))] == []


def test_one_public_object_per_name():
    """A name exported by two packages is one object (``active.variation_ratio`` is
    ``functional.variation_ratio``): no two public functions share a name and differ."""
    by_name: dict[str, set[int]] = {}
    paths: dict[str, list[str]] = {}
    for path, obj in public_objects():
        short = path.rsplit(".", 1)[1]
        if callable(obj):
            by_name.setdefault(short, set()).add(id(obj))
            paths.setdefault(short, []).append(path)
    assert {n: paths[n] for n, ids in by_name.items() if len(ids) > 1} == {}
