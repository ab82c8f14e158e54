"""JSON Schema of the spec, for editors (YAML autocompletion) and other tools.

Example:
    >>> from cloudml.schema import json_schema
    >>> s = json_schema()
    >>> s["title"], sorted(s["properties"]["kind"]["enum"])
    ('cloudml spec', ['Deployment', 'Pipeline'])
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["json_schema"]

SCHEMA_ID = "https://cloudml.dev/schema/cloudml-v1.json"


def json_schema(kind: Literal["all", "pipeline", "deployment"] = "all") -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) for pipelines, deployments, or either (chosen by ``kind``).

    Example:
        >>> json_schema("pipeline")["title"]
        'Pipeline'
    """
    from pydantic import TypeAdapter

    from cloudml.spec.deployment import Deployment
    from cloudml.spec.pipeline import Pipeline

    if kind == "pipeline":
        out = Pipeline.model_json_schema(by_alias=True)
    elif kind == "deployment":
        out = Deployment.model_json_schema(by_alias=True)
    else:
        union: TypeAdapter[Pipeline | Deployment] = TypeAdapter(Pipeline | Deployment)
        inner = union.json_schema(by_alias=True)
        defs = inner.pop("$defs", {})
        out = {
            "title": "cloudml spec",
            "description": "A cloudml Pipeline or Deployment (apiVersion cloudml/v1).",
            "type": "object",
            "properties": {"kind": {"enum": ["Pipeline", "Deployment"]}},
            "required": ["kind"],
            "if": {"properties": {"kind": {"const": "Deployment"}}},
            "then": {"$ref": "#/$defs/Deployment"},
            "else": {"$ref": "#/$defs/Pipeline"},
            "$defs": defs,
        }
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["$id"] = SCHEMA_ID
    return out
