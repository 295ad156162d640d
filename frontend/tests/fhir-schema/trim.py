#!/usr/bin/env python3
"""Trims the official FHIR R4 JSON schema (fhir.schema.json, 4.0.1) to the resources Kartotek's
frontend answers, keeping every definition they reach unchanged except:

- `ResourceList` (a Bundle entry's resource: any of the ~150 resources) lists only ROOTS;
- the root `oneOf` and `discriminator` list only ROOTS;
- `description` texts are dropped (documentation only; validation is unchanged);
- the FHIRVersion enums get "4.0.1" added: the published R4 schema lists versions up to 4.0.0
  only (a known erratum of fhir.schema.json), so an R4 CapabilityStatement saying
  fhirVersion 4.0.1, R4's own version, would fail.

Usage: python3 trim.py fhir.schema.json > fhir-r4-subset.schema.json
See README.md beside this file for where fhir.schema.json came from.
"""
import json
import sys

ROOTS = ["AuditEvent", "Bundle", "CapabilityStatement", "DocumentReference", "OperationOutcome"]


def refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/definitions/"):
                out.add(v[len("#/definitions/"):])
            else:
                refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def add_r4_version(node):
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and "4.0.0" in enum and "4.0.1" not in enum:
            enum.append("4.0.1")
        for v in node.values():
            add_r4_version(v)
    elif isinstance(node, list):
        for v in node:
            add_r4_version(v)


def main():
    full = json.load(open(sys.argv[1]))
    defs = full["definitions"]
    defs["ResourceList"] = {"oneOf": [{"$ref": f"#/definitions/{r}"} for r in ROOTS]}
    keep, todo = set(), list(ROOTS) + ["ResourceList"]
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        found = set()
        refs(defs[name], found)
        todo.extend(found - keep)
    out = {
        "$schema": full["$schema"],
        "id": full["id"],
        "description": "A subset of the official FHIR R4 (4.0.1) JSON schema: " + ", ".join(ROOTS)
        + " and every definition they use. Made by trim.py; see README.md.",
        "discriminator": {
            "propertyName": "resourceType",
            "mapping": {r: f"#/definitions/{r}" for r in ROOTS},
        },
        "oneOf": [{"$ref": f"#/definitions/{r}"} for r in ROOTS],
        "definitions": {k: strip(defs[k]) for k in sorted(keep)},
    }
    add_r4_version(out)
    json.dump(out, sys.stdout, indent=1, sort_keys=False, ensure_ascii=False)
    sys.stdout.write("\n")


main()
