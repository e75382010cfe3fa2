"""JSON Schema export for operators, and the additive-change rule that guards it.

`python -m lanyard.contracts.schema export DIR` writes one schema per event type (and refuses a
breaking change against what DIR already holds). `breaking_changes(old, new)` names every way a
new schema would break a reader of the old one: a property removed or retyped, or a newly
required property.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lanyard.contracts.events import EVENT_TYPES


def schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema (validation mode) of every event type, by type string."""
    return {cls.model_fields["type"].default: cls.model_json_schema() for cls in EVENT_TYPES}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = root.get("$defs", {})[name]
    return schema


def _shape(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """A comparable summary of a property's type, ignoring descriptions and defaults."""
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        return ("anyOf", sorted(json.dumps(_shape(s, root), sort_keys=True) for s in schema["anyOf"]))
    if schema.get("type") == "array":
        items = schema.get("items", {})
        return ("array", _shape(items, root) if items else None)
    if "const" in schema:
        return ("const", schema["const"])
    if "enum" in schema:
        return ("enum", sorted(map(str, schema["enum"])))
    if schema.get("type") == "object" and "properties" in schema:
        return ("object", schema.get("title"))
    return (schema.get("type"), schema.get("format"))


def breaking_changes(old: dict[str, Any], new: dict[str, Any], path: str = "") -> list[str]:
    """Every change from `old` to `new` that a reader of `old` could not tolerate."""
    return _compare(old, old, new, new, path)


def _compare(old: dict, old_root: dict, new: dict, new_root: dict, path: str) -> list[str]:
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    problems: list[str] = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, old_prop in old_props.items():
        where = f"{path}.{name}" if path else name
        if name not in new_props:
            problems.append(f"{where}: removed")
            continue
        new_prop = new_props[name]
        old_r, new_r = _resolve(old_prop, old_root), _resolve(new_prop, new_root)
        if "properties" in old_r and "properties" in new_r:
            problems += _compare(old_r, old_root, new_r, new_root, where)
            continue
        old_shape, new_shape = _shape(old_prop, old_root), _shape(new_prop, new_root)
        if old_shape != new_shape and not _widened(old_shape, new_shape):
            problems.append(f"{where}: type changed from {old_shape} to {new_shape}")
    added_required = set(new.get("required", [])) - set(old.get("required", []))
    for name in sorted(added_required):
        problems.append(f"{path + '.' if path else ''}{name}: newly required")
    return problems


def _widened(old: Any, new: Any) -> bool:
    """An enum that only gained members is additive."""
    return old[0] == new[0] == "enum" and set(old[1]) <= set(new[1])


def export(directory: Path) -> list[str]:
    """Write every schema to `directory`; refuse (and write nothing) if any change is breaking."""
    directory.mkdir(parents=True, exist_ok=True)
    current = schemas()
    problems: list[str] = []
    for kind, schema in current.items():
        existing = directory / f"{kind}.json"
        if existing.exists():
            problems += [f"{kind}: {p}" for p in breaking_changes(json.loads(existing.read_text()), schema)]
    if problems:
        return problems
    for kind, schema in current.items():
        (directory / f"{kind}.json").write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    return []


def main(argv: list[str]) -> int:
    """CLI: `export DIR`."""
    if len(argv) != 2 or argv[0] != "export":
        print("usage: python -m lanyard.contracts.schema export DIR", file=sys.stderr)
        return 2
    problems = export(Path(argv[1]))
    for p in problems:
        print(f"breaking change: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
