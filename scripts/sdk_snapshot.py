#!/usr/bin/env python3
"""Writes a JSON snapshot of the request shapes of the pinned openai-python SDK.

    .venv/bin/python scripts/sdk_snapshot.py            # rewrite the snapshot
    .venv/bin/python scripts/sdk_snapshot.py --check    # exit 1 if it differs

The snapshot records, for each request class the gateway validates, every
wire field with whether it is required and its type, resolving nested
TypedDicts (as named definitions), unions, literals, lists and maps. The
gateway's Rust field tables are checked against it (cargo test), so a new
SDK pin fails the build until its differences have been audited.

Required-ness: the SDK's type modules use `from __future__ import
annotations`, so `__required_keys__` is empty at run time; it comes from the
`Required[...]` / `NotRequired[...]` wrappers and the class's `total` flag."""

from __future__ import annotations

import collections.abc
import importlib
import json
import sys
import types
import typing
from pathlib import Path

import typing_extensions as te

PINNED = "1.109.1"
SNAPSHOT = Path(__file__).resolve().parents[1] / "tests/sdk/openai-request-shapes.json"

# Endpoint → the classes whose fields make up its request body.
SHAPES = {
    "POST /v1/chat/completions": [
        "openai.types.chat.completion_create_params.CompletionCreateParamsBase",
        # `stream` is declared only on the non-streaming / streaming subclasses.
        "openai.types.chat.completion_create_params.CompletionCreateParamsNonStreaming",
        "openai.types.chat.completion_create_params.CompletionCreateParamsStreaming",
    ],
    "POST /v1/completions": [
        "openai.types.completion_create_params.CompletionCreateParamsBase",
        "openai.types.completion_create_params.CompletionCreateParamsNonStreaming",
        "openai.types.completion_create_params.CompletionCreateParamsStreaming",
    ],
    "POST /v1/embeddings": [
        "openai.types.embedding_create_params.EmbeddingCreateParams",
    ],
    "POST /v1/responses": [
        "openai.types.responses.response_create_params.ResponseCreateParamsBase",
        "openai.types.responses.response_create_params.ResponseCreateParamsNonStreaming",
        "openai.types.responses.response_create_params.ResponseCreateParamsStreaming",
    ],
}


def load(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class Snapshotter:
    def __init__(self) -> None:
        self.definitions: dict[str, dict] = {}

    def typed_dict(self, cls) -> dict:
        hints = te.get_type_hints(cls, include_extras=True)
        fields = {}
        for name, hint in hints.items():
            required = bool(cls.__total__)
            wire_name = name
            while True:
                origin = te.get_origin(hint)
                if origin is te.Required:
                    required, hint = True, te.get_args(hint)[0]
                elif origin is te.NotRequired:
                    required, hint = False, te.get_args(hint)[0]
                elif origin is te.Annotated:
                    args = te.get_args(hint)
                    for meta in args[1:]:
                        alias = getattr(meta, "alias", None)
                        if alias:
                            wire_name = alias
                    hint = args[0]
                else:
                    break
            fields[wire_name] = {"required": required, "type": self.type_of(hint)}
        return {"total": bool(cls.__total__), "fields": dict(sorted(fields.items()))}

    def type_of(self, hint):
        if hint is type(None) or hint is None:
            return "null"
        if hint is str:
            return "string"
        if hint is bool:
            return "boolean"
        if hint is int:
            return "integer"
        if hint is float:
            return "number"
        if hint is object or hint is typing.Any:
            return "any"
        if te.is_typeddict(hint):
            ref = f"{hint.__module__}.{hint.__qualname__}"
            if ref not in self.definitions:
                self.definitions[ref] = {}  # placeholder against recursion
                self.definitions[ref] = self.typed_dict(hint)
            return {"ref": ref}
        origin = te.get_origin(hint)
        args = te.get_args(hint)
        if origin is te.Literal:
            return {"literal": sorted(args, key=lambda v: (str(type(v)), v))}
        if origin in (typing.Union, types.UnionType):
            flat = []
            for arg in args:
                t = self.type_of(arg)
                for option in (t["anyOf"] if isinstance(t, dict) and "anyOf" in t else [t]):
                    if option not in flat:
                        flat.append(option)
            return {"anyOf": flat}
        if origin in (te.Required, te.NotRequired, te.Annotated):
            return self.type_of(args[0])
        if origin in (list, tuple, collections.abc.Iterable, collections.abc.Sequence):
            return {"array": self.type_of(args[0]) if args else "any"}
        if origin in (dict, collections.abc.Mapping):
            return {"map": self.type_of(args[1]) if len(args) == 2 else "any"}
        raise SystemExit(f"sdk_snapshot: no rule for type {hint!r}; extend type_of()")


def merge(declared: list[dict]) -> dict:
    """One body shape from several classes: a field is required only if every
    class requires it; its type is the union of the declared types."""
    fields = {}
    for name in sorted(set().union(*declared)):
        specs = [d[name] for d in declared if name in d]
        options = []
        for spec in specs:
            t = spec["type"]
            for option in (t["anyOf"] if isinstance(t, dict) and "anyOf" in t else [t]):
                if option not in options:
                    options.append(option)
        literals = [o for o in options if isinstance(o, dict) and "literal" in o]
        if len(literals) > 1:  # Literal[False] | Literal[True] -> one literal list
            merged = sorted({v for o in literals for v in o["literal"]}, key=lambda v: (str(type(v)), v))
            options = [o for o in options if o not in literals] + [{"literal": merged}]
        fields[name] = {
            "required": len(specs) == len(declared) and all(spec["required"] for spec in specs),
            "type": options[0] if len(options) == 1 else {"anyOf": options},
        }
    return fields


def snapshot() -> dict:
    import openai

    if openai.__version__ != PINNED:
        raise SystemExit(f"sdk_snapshot: openai {openai.__version__} is installed, the pin is {PINNED}")
    s = Snapshotter()
    shapes = {}
    for endpoint, classes in SHAPES.items():
        declared = [s.typed_dict(load(path))["fields"] for path in classes]
        shapes[endpoint] = {"classes": classes, "fields": merge(declared)}
    return {
        "sdk": "openai-python",
        "version": PINNED,
        "shapes": shapes,
        "definitions": dict(sorted(s.definitions.items())),
    }


def render(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=False) + "\n"


def main() -> int:
    text = render(snapshot())
    if "--check" in sys.argv[1:]:
        if not SNAPSHOT.is_file() or SNAPSHOT.read_text() != text:
            print(f"{SNAPSHOT} is not what openai {PINNED} declares; regenerate it with "
                  f"`make sdk-snapshot` and audit the difference", file=sys.stderr)
            return 1
        return 0
    SNAPSHOT.write_text(text)
    print(f"wrote {SNAPSHOT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
