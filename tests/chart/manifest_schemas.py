"""Strict validation of rendered objects: built-in kinds against Kubernetes' own schemas
(kubernetes-validate, strict: unknown fields are errors), custom kinds against their CRDs.

A CRD's openAPIV3Schema lets unknown fields through, so it is made strict here the way the API
server prunes: wherever properties are listed and the node does not say
x-kubernetes-preserve-unknown-fields, no other property is allowed.
x-kubernetes-int-or-string becomes "an integer or a string". Patterns are Go (RE2) regular
expressions, which take inline flags anywhere; Python wants them first.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

# The chart's kubeVersion floor and a recent release.
KUBERNETES_VERSIONS = ("1.29.0", "1.34.0")

Schema = dict[str, Any]
Manifest = dict[str, Any]


def strict_schema(node: Any) -> Any:
    """A copy of an OpenAPI v3 schema in which unlisted properties are errors."""
    if isinstance(node, list):
        return [strict_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    strict = {key: strict_schema(value) for key, value in node.items()}
    if strict.pop("x-kubernetes-int-or-string", False):
        strict.pop("type", None)
        strict["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if isinstance(strict.get("pattern"), str) and strict["pattern"].startswith("^(?i)"):
        strict["pattern"] = "(?i)^" + strict["pattern"].removeprefix("^(?i)")
    preserves_unknown = strict.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in strict and "additionalProperties" not in strict and not preserves_unknown:
        strict["additionalProperties"] = False
    return strict


def _object_schema(version_schema: Schema, api_version: str, kind: str) -> Schema:
    schema = strict_schema(version_schema)
    # apiVersion, kind and metadata are the API server's, checked here as it would.
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = {"$ref": "#/definitions/metadata"}
    schema["definitions"] = {
        "metadata": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    }
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return schema


def crd_validators(crd_dir: Path) -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """A validator per (apiVersion, kind) served by the CRD files in the folder."""
    validators = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if not version.get("served", True):
                    continue
                api_version = f"{group}/{version['name']}"
                schema = _object_schema(version["schema"]["openAPIV3Schema"], api_version, kind)
                jsonschema.Draft7Validator.check_schema(schema)
                validators[api_version, kind] = jsonschema.Draft7Validator(schema)
    return validators


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top)"


def problems(
    manifest: Manifest, crds: dict[tuple[str, str], jsonschema.Draft7Validator]
) -> list[str]:
    """What is wrong with one rendered object; empty when it validates."""
    key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
    name = f"{key[1]} {manifest.get('metadata', {}).get('name')}"
    if key in crds:
        errors: Iterable[jsonschema.ValidationError] = crds[key].iter_errors(manifest)
        return [f"{name}: {_path(error)}: {error.message}" for error in errors]
    found = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            found.append(f"{name} (Kubernetes {version}): {_path(error)}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            found.append(f"{name}: no schema for {key} in Kubernetes {version}: {error.message}")
    return found
