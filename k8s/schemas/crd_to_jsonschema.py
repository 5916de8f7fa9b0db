"""Turn a CustomResourceDefinition's published OpenAPI v3 schema into a strict JSON schema.

The API server prunes or rejects fields that a CRD's structural schema does not declare; the strict
schema says the same offline: every object that lists `properties` gets `additionalProperties: false`
unless the CRD marks it `x-kubernetes-preserve-unknown-fields`. Descriptions are dropped to keep the
files small. CEL rules (`x-kubernetes-validations`) cannot be checked by a JSON schema and are kept in
`$comment` so a reader sees what the API server would still check.

Usage (the files under k8s/schemas/ were written this way; SOURCES.md lists the exact inputs):

    python k8s/schemas/crd_to_jsonschema.py CRD.yaml [CRD.yaml ...] --source URL -o k8s/schemas
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

# The part of ObjectMeta a manifest may set; anything else (uid, resourceVersion, ...) is server-owned.
OBJECT_META: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

_DROP = {"description", "example", "x-kubernetes-list-map-keys", "x-kubernetes-list-type", "x-kubernetes-map-type"}


def strict(node: Any) -> Any:
    """A copy of an OpenAPI v3 (structural) schema node as a strict JSON schema node."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "x-kubernetes-validations":
            out["$comment"] = "CEL (checked by the API server only): " + "; ".join(rule.get("rule", "") for rule in value)
        elif key == "properties":
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = strict(value) if isinstance(value, (dict, list)) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            # In structural schemas these only carry value constraints, never field declarations.
            out[key] = [strict(sub) for sub in value]
        elif key.startswith("x-kubernetes-"):
            continue
        elif key == "pattern" and value.startswith("^(?i)"):
            out[key] = "(?i)^" + value[len("^(?i)"):]  # Python's re wants global flags first
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable"):
        out.pop("nullable", None)
        if "type" in out:
            out["type"] = [out["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def schema_for(crd: dict[str, Any], version: dict[str, Any], source: str, digest: str) -> dict[str, Any]:
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    root = strict(version["schema"]["openAPIV3Schema"])
    root["properties"]["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
    root["properties"]["kind"] = {"type": "string", "enum": [kind]}
    root["properties"]["metadata"] = OBJECT_META
    root["required"] = sorted({"apiVersion", "kind", "metadata", *root.get("required", [])})
    root["additionalProperties"] = False
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"{kind} {group}/{version['name']}, strict, from {source} (sha256 {digest})",
        **root,
    }


def file_name(crd: dict[str, Any], version: str) -> str:
    """kubernetes-validate's naming: kind-groupprefix-version.json (monitoring.coreos.com -> monitoring)."""
    return f"{crd['spec']['names']['kind'].lower()}-{crd['spec']['group'].split('.')[0]}-{version}.json"


def convert(path: Path, source: str, out_dir: Path) -> list[Path]:
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    written = []
    for crd in yaml.safe_load_all(raw):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        for version in crd["spec"]["versions"]:
            if not version.get("served", True):
                continue
            target = out_dir / file_name(crd, version["name"])
            target.write_text(json.dumps(schema_for(crd, version, source, digest), indent=1, sort_keys=True) + "\n")
            written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crds", nargs="+", type=Path)
    parser.add_argument("--source", required=True, help="Where the CRD file was published (recorded in each schema).")
    parser.add_argument("-o", "--out-dir", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    for crd in args.crds:
        for path in convert(crd, args.source, args.out_dir):
            print(path)


if __name__ == "__main__":
    main()
