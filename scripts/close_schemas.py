#!/usr/bin/env python3
"""Closes every object schema of an OpenAPI document: an object schema that
does not say otherwise gets `additionalProperties: false`, so that an answer
field the document does not name fails schemathesis's schema check.

Usage: close_schemas.py IN.json OUT.json
"""
import json
import sys


def close(node):
    if isinstance(node, dict):
        is_object = node.get("type") == "object" or (
            isinstance(node.get("type"), list) and "object" in node["type"]
        ) or "properties" in node
        if is_object and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            close(value)
    elif isinstance(node, list):
        for value in node:
            close(value)


def main():
    with open(sys.argv[1]) as source:
        document = json.load(source)
    close(document.get("components", {}).get("schemas", {}))
    close(document.get("paths", {}))
    with open(sys.argv[2], "w") as target:
        json.dump(document, target, indent=1)


if __name__ == "__main__":
    main()
