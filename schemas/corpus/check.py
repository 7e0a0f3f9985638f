#!/usr/bin/env python3
"""Validates manifests against the qemuctl JSON Schema, independently of qemuctl.

YAML is read with PyYAML, but with the YAML 1.2 core schema's tag resolution (as qemuctl
reads it): `on`/`yes` are strings, `0o17` and `0x1f` are integers, `2001-12-14` is a
string, `<<` is an ordinary key; a duplicate key is an error (YAML requires unique keys).
The schema is applied by the `jsonschema` package (Draft 2020-12).

Usage: check.py SCHEMA FILE...   One line per file: FILE<TAB>valid, or
FILE<TAB>invalid<TAB>reason. Exit status 0 unless the schema itself is broken.
"""
import json
import re
import sys

import yaml
from jsonschema import Draft202012Validator


class CoreLoader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema instead of YAML 1.1's implicit types."""


CoreLoader.yaml_implicit_resolvers = {}
_resolvers = [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", list("~nN") + [""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     list("-+.0123456789")),
]
for tag, pattern, first in _resolvers:
    CoreLoader.add_implicit_resolver(tag, re.compile(pattern), first)


def _int(loader, node):
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _float(loader, node):
    text = loader.construct_scalar(node).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text.endswith(".nan"):
        return float("nan")
    return float(text)


def _bool(loader, node):
    return loader.construct_scalar(node).lower() == "true"


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=True)


CoreLoader.add_constructor("tag:yaml.org,2002:int", _int)
CoreLoader.add_constructor("tag:yaml.org,2002:float", _float)
CoreLoader.add_constructor("tag:yaml.org,2002:bool", _bool)
CoreLoader.add_constructor("tag:yaml.org,2002:map", _mapping)
# Merge keys are YAML 1.1: `<<` stays an ordinary string key (flatten_mapping only merges keys tagged merge).


def check(validator, path):
    try:
        with open(path, encoding="utf-8") as f:
            documents = [d for d in yaml.load_all(f, Loader=CoreLoader) if d is not None]
    except yaml.YAMLError as e:
        return "yaml: " + " ".join(str(e).split())
    if not documents:
        return "no document"
    for document in documents:
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.absolute_path)
            return "schema: %s: %s" % (where or "(root)", " ".join(e.message.split())[:200])
    return None


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for path in sys.argv[2:]:
        reason = check(validator, path)
        print(path + ("\tvalid" if reason is None else "\tinvalid\t" + reason))


if __name__ == "__main__":
    main()
