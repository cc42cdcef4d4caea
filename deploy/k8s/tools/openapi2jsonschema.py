#!/usr/bin/env python3
"""Kubernetes OpenAPI (swagger 2.0) -> kubeconform's per-kind JSON schemas, offline.

kubeconform normally downloads yannh/kubernetes-json-schema from GitHub. That
repository is generated from the `api/openapi-spec/swagger.json` of a Kubernetes
release with openapi2jsonschema (`--expanded --kubernetes --stand-alone --strict`).
This script does the same from the swagger.json inside the k8s.io/kubernetes
module zip, which the Go module proxy serves (`go mod download -json
k8s.io/kubernetes@vX.Y.Z`), and writes the same layout kubeconform reads with
`-schema-location DIR -kubernetes-version X.Y.Z`:

    DIR/vX.Y.Z-standalone-strict/deployment-apps-v1.json     (used with -strict)
    DIR/vX.Y.Z-standalone/deployment-apps-v1.json
    DIR/vX.Y.Z-standalone-strict/service-v1.json             (core group: no group part)

One file per kind (every definition carrying x-kubernetes-group-version-kind),
named like kubeconform's registry names it: lower-case kind, the first label of
the group, the version. Each file is standalone: every $ref is inlined, except
for definitions that refer to themselves (only JSONSchemaProps, in CRDs), which
go to a local "definitions" section of that file. The transformations are the
ones openapi2jsonschema / kubeconform apply, each for the reason given:

- strict: `additionalProperties: false` on every object schema that lists its
  properties (the kind's root included), so an unknown or misspelt field fails,
  like the API server's strict field validation;
- int-or-string (IntOrString, x-kubernetes-int-or-string) -> oneOf string|integer,
  and resource.Quantity -> oneOf string|number, which is what the API server's
  decoders accept (`cpu: 1`, `maxUnavailable: 25%`);
- an optional property (not in its object's `required`) may be null, as the API
  server treats null as "unset" (`creationTimestamp: null` in generated YAML);
- the root's `kind` and `apiVersion` are pinned with enums.

Standard library only. Usage:
    openapi2jsonschema.py --zip MODULE.zip|--swagger swagger.json --version 1.34.4 --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

INT_OR_STRING: Schema = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
QUANTITY_DEF = "io.k8s.apimachinery.pkg.api.resource.Quantity"
QUANTITY: Schema = {"oneOf": [{"type": "string"}, {"type": "number"}]}
GVK = "x-kubernetes-group-version-kind"


def load_swagger(zip_path: Path | None, swagger_path: Path | None) -> Schema:
    if swagger_path is not None:
        data: Schema = json.loads(swagger_path.read_text())
        return data
    assert zip_path is not None
    with zipfile.ZipFile(zip_path) as zf:
        names = [n for n in zf.namelist() if n.endswith("/api/openapi-spec/swagger.json")]
        if len(names) != 1:
            raise SystemExit(f"{zip_path}: expected one api/openapi-spec/swagger.json, found {names}")
        data = json.loads(zf.read(names[0]))
        return data


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def refs_in(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.add(ref_name(node["$ref"]))
        for v in node.values():
            found |= refs_in(v)
    elif isinstance(node, list):
        for v in node:
            found |= refs_in(v)
    return found


def recursive_definitions(defs: dict[str, Schema]) -> set[str]:
    """Definitions that can reach themselves through $refs (these cannot be inlined)."""
    edges = {name: refs_in(body) for name, body in defs.items()}
    recursive: set[str] = set()
    for start in defs:
        seen: set[str] = set()
        todo = list(edges[start])
        while todo:
            cur = todo.pop()
            if cur == start:
                recursive.add(start)
                break
            if cur in seen or cur not in edges:
                continue
            seen.add(cur)
            todo.extend(edges[cur])
    return recursive


class Expander:
    """Inlines $refs with the strict / int-or-string / nullable transformations applied."""

    def __init__(self, defs: dict[str, Schema], strict: bool) -> None:
        self.defs = defs
        self.strict = strict
        self.recursive = recursive_definitions(defs)
        self.memo: dict[str, Schema] = {}  # expanded non-recursive definitions
        self.local: dict[str, Schema] = {}  # expanded recursive ones, for a file's "definitions"

    def definition(self, name: str) -> Schema:
        if name not in self.defs:
            raise SystemExit(f"unresolved $ref {name}")
        if name in self.recursive:
            if name not in self.local:
                self.local[name] = {}  # placeholder first: the body refers to itself
                self.local[name] = self.node(self.defs[name])
            return {"$ref": f"#/definitions/{name}"}
        if name not in self.memo:
            self.memo[name] = self.node(self.defs[name])
        return self.memo[name]

    def node(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.node(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node and isinstance(node["$ref"], str):
            name = ref_name(node["$ref"])
            if name == QUANTITY_DEF:
                return dict(QUANTITY)
            return self.definition(name)
        if node.get("format") == "int-or-string" or node.get("x-kubernetes-int-or-string") is True:
            return {**({"description": node["description"]} if "description" in node else {}), **INT_OR_STRING}
        out: Schema = {}
        for key, value in node.items():
            if key.startswith("x-kubernetes-") and key != "x-kubernetes-preserve-unknown-fields":
                continue  # patch strategies, list types, ...: no meaning to a JSON schema validator
            if key == "properties" and isinstance(value, dict):
                required = set(node.get("required", []))
                out[key] = {
                    prop: self.node(sub) if prop in required else nullable(self.node(sub))
                    for prop, sub in value.items()
                }
            else:
                out[key] = self.node(value)
        if (
            self.strict
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out

    def local_definitions(self, schema: Schema) -> dict[str, Schema]:
        """The recursive definitions `schema` refers to, transitively."""
        needed: dict[str, Schema] = {}
        todo = list(refs_in(schema))
        while todo:
            name = todo.pop()
            if name not in needed:
                needed[name] = self.local[name]
                todo.extend(refs_in(self.local[name]))
        return needed


def nullable(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    if isinstance(schema.get("type"), str) and schema["type"] != "null":
        return {**schema, "type": [schema["type"], "null"]}
    if isinstance(schema.get("oneOf"), list):
        return {**schema, "oneOf": [*schema["oneOf"], {"type": "null"}]}
    return schema


def file_name(group: str, version: str, kind: str) -> str:
    """kubeconform's {{ .ResourceKind }}{{ .KindSuffix }}: deployment-apps-v1, service-v1, role-rbac-v1."""
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json".lower()


def kind_schema(expander: Expander, name: str, gvk: dict[str, str]) -> Schema:
    body = expander.node({k: v for k, v in expander.defs[name].items() if k != GVK})
    root: Schema = json.loads(json.dumps(body))  # a private copy: the enums below are per kind
    root.setdefault("type", "object")
    api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
    props = root.get("properties", {})
    for key, value in (("kind", gvk["kind"]), ("apiVersion", api_version)):
        if key in props:
            props[key] = {**props[key], "enum": [value]}
    local = expander.local_definitions(root)
    if local:
        root["definitions"] = local
    return root


def generate(swagger: Schema, version: str, out: Path) -> int:
    defs: dict[str, Schema] = swagger["definitions"]
    written = 0
    for strict in (True, False):
        expander = Expander(defs, strict)
        folder = out / f"v{version}-standalone{'-strict' if strict else ''}"
        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        for name in sorted(defs):
            for gvk in defs[name].get(GVK, []):
                schema = kind_schema(expander, name, gvk)
                (tmp / file_name(gvk["group"], gvk["version"], gvk["kind"])).write_text(
                    json.dumps(schema, separators=(",", ":"), sort_keys=True)
                )
                written += 1
        if folder.exists():
            for old in folder.iterdir():
                old.unlink()
            folder.rmdir()
        tmp.rename(folder)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--zip", type=Path, help="the k8s.io/kubernetes module zip from the Go module proxy")
    source.add_argument("--swagger", type=Path, help="an api/openapi-spec/swagger.json")
    parser.add_argument("--version", required=True, help="Kubernetes version, e.g. 1.34.4 (no leading v)")
    parser.add_argument("--out", type=Path, required=True, help="schema root passed to kubeconform -schema-location")
    args = parser.parse_args(argv)
    swagger = load_swagger(args.zip, args.swagger)
    written = generate(swagger, args.version.removeprefix("v"), args.out)
    print(f"wrote {written} schema files for Kubernetes v{args.version} under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
