"""Pure rules of the SageMaker fake: deployment-guardrail validation and traffic steps, pipeline steps.

Private to tests/fakes: :mod:`tests.fakes.sagemaker` is the public face. No I/O here.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

TRAFFIC_TYPES = ("ALL_AT_ONCE", "CANARY", "LINEAR")
CAPACITY_TYPES = ("INSTANCE_COUNT", "CAPACITY_PERCENT")
STEP_JOBS = {"Processing": ("ProcessingJob", "processing-job"), "Training": ("TrainingJob", "training-job"),
             "Transform": ("TransformJob", "transform-job"), "Tuning": ("TuningJob", "hyper-parameter-tuning-job"),
             "Model": ("Model", "model")}
STEP_REF = re.compile(r'"Steps\.([A-Za-z0-9\-_]+)')


def policy_of(dc: dict[str, Any]) -> dict[str, Any]:
    return dict(dc.get("BlueGreenUpdatePolicy") or dc.get("RollingUpdatePolicy") or {})


def timings(dc: dict[str, Any] | None) -> tuple[float, float, float | None]:
    """(bake per shift, termination wait, execution timeout) in service seconds."""
    policy = policy_of(dc or {})
    routing = policy.get("TrafficRoutingConfiguration") or {}
    wait = routing.get("WaitIntervalInSeconds", policy.get("WaitIntervalInSeconds", 0))
    return float(wait), float(policy.get("TerminationWaitInSeconds", 0)), policy.get("MaximumExecutionTimeoutInSeconds")


def alarm_names(dc: dict[str, Any] | None) -> list[str]:
    return [a["AlarmName"] for a in ((dc or {}).get("AutoRollbackConfiguration") or {}).get("Alarms", [])]


def size_check(key: str, size: dict[str, Any], variants: list[dict[str, Any]], lo: float, hi: float) -> str | None:
    kind, value = size.get("Type"), float(size.get("Value", 0))
    if kind not in CAPACITY_TYPES:
        return (f"Value '{kind}' at '{key}.type' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(CAPACITY_TYPES)}]")
    for variant in variants:
        count = variant.get("InitialInstanceCount")
        share = value / 100 if kind == "CAPACITY_PERCENT" else (value / count if count else None)
        if share is not None and not lo <= share <= hi:
            return (f"{key} {value:g} ({kind}) is {share:.0%} of the new fleet of variant '{variant['VariantName']}'"
                    f" ({count} instances); it must be between {lo:.0%} and {hi:.0%}.")
    return None


def validate_deployment(dc: dict[str, Any], old: list[str], new: list[dict[str, Any]]) -> str | None:
    """What the service checks and botocore does not (enum, one policy, step sizes, variant names, timeout)."""
    blue_green, rolling = dc.get("BlueGreenUpdatePolicy"), dc.get("RollingUpdatePolicy")
    if blue_green and rolling:
        return "DeploymentConfig can specify only one of BlueGreenUpdatePolicy or RollingUpdatePolicy."
    if not blue_green and not rolling:
        return "DeploymentConfig must specify BlueGreenUpdatePolicy or RollingUpdatePolicy."
    if sorted(old) != sorted(v["VariantName"] for v in new):
        return (f"The new endpoint config must keep the variant names {sorted(old)} of the current one for a "
                f"deployment with DeploymentConfig; got {sorted(v['VariantName'] for v in new)}.")
    if blue_green:
        routing = blue_green.get("TrafficRoutingConfiguration") or {}
        kind = routing.get("Type")
        if kind not in TRAFFIC_TYPES:
            return (f"1 validation error detected: Value '{kind}' at 'deploymentConfig.blueGreenUpdatePolicy."
                    f"trafficRoutingConfiguration.type' failed to satisfy constraint: Member must satisfy enum "
                    f"value set: [{', '.join(TRAFFIC_TYPES)}]")
        key, lo, hi = {"CANARY": ("CanarySize", 0.0, 0.5), "LINEAR": ("LinearStepSize", 0.1, 0.5)}.get(
            kind, ("", 0.0, 1.0))
        size = routing.get(key) if key else None
        if key and size is None:
            return f"{key} is required when TrafficRoutingConfiguration.Type is {kind}."
    else:
        if len(new) > 1:
            return "RollingUpdatePolicy does not support endpoints with more than one production variant."
        key, lo, hi, size = "MaximumBatchSize", 0.05, 0.5, (rolling or {}).get("MaximumBatchSize")
    if size is not None and (error := size_check(key, size, new, lo, hi)):
        return error
    wait, termination, timeout = timings(dc)
    if timeout is not None and timeout <= wait + termination:
        return (f"MaximumExecutionTimeoutInSeconds ({timeout}) must be greater than WaitIntervalInSeconds plus "
                f"TerminationWaitInSeconds ({wait + termination:g}).")
    return None


def traffic_steps(dc: dict[str, Any] | None, variants: list[dict[str, Any]]) -> list[float]:
    """Cumulative traffic percentages on the new fleet, one per shift."""
    policy = policy_of(dc or {})
    routing = policy.get("TrafficRoutingConfiguration") or {}
    kind = routing.get("Type", "LINEAR" if "MaximumBatchSize" in policy else "ALL_AT_ONCE")
    size = routing.get("CanarySize") or routing.get("LinearStepSize") or policy.get("MaximumBatchSize")
    if kind == "ALL_AT_ONCE" or not size:
        return [100.0]
    count = variants[0].get("InitialInstanceCount") or 1
    share = size["Value"] / 100 if size["Type"] == "CAPACITY_PERCENT" else size["Value"] / count
    if kind == "CANARY":
        return [round(100 * share, 2), 100.0]
    shifts = math.ceil(1 / share - 1e-9)
    return [min(100.0, round(100 * share * i, 2)) for i in range(1, shifts)] + [100.0]


def topological(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {s.get("Name") for s in steps}
    needs = {s.get("Name"): (set(s.get("DependsOn", [])) | set(STEP_REF.findall(json.dumps(s.get("Arguments")))))
             & names - {s.get("Name")} for s in steps}
    ordered: list[dict[str, Any]] = []
    pending = list(steps)
    while pending:
        done = {s.get("Name") for s in ordered}
        ready = [s for s in pending if needs[s.get("Name")] <= done] or pending[:1]  # a cycle: keep going
        ordered.append(ready[0])
        pending.remove(ready[0])
    return ordered


def step_metadata(step: dict[str, Any], arn: str, outcome: bool) -> dict[str, Any]:
    name, kind, args = step.get("Name", ""), step.get("Type", ""), step.get("Arguments") or {}
    prefix = ":".join(arn.split(":")[:5])
    if kind in STEP_JOBS:
        key, resource = STEP_JOBS[kind]
        job = f"pipelines-{arn.rsplit('/', 1)[-1]}-{name}".lower()[:63]
        return {key: {"Arn": f"{prefix}:{resource}/{job}"}}
    if kind == "RegisterModel":
        group = args.get("ModelPackageGroupName", name) if isinstance(args, dict) else name
        return {"RegisterModel": {"Arn": f"{prefix}:model-package/{group}/1"}}
    if kind == "Condition":
        return {"Condition": {"Outcome": "True" if outcome else "False"}}
    if kind == "Fail":
        message = args.get("ErrorMessage", "") if isinstance(args, dict) else ""
        return {"Fail": {"ErrorMessage": message if isinstance(message, str) else json.dumps(message)}}
    return {}


def definition_steps(definition: dict[str, Any], outcomes: dict[str, bool], arn: str,
                      start: float) -> list[dict[str, Any]]:
    """Every step Succeeded in run order; a condition takes IfSteps (or ElseSteps), a Fail step fails and ends."""
    entries: list[dict[str, Any]] = []

    def walk(steps: list[dict[str, Any]]) -> bool:
        for step in topological([s for s in steps if isinstance(s, dict)]):
            name = step.get("Name", "")
            outcome = outcomes.get(name, True)
            t = start + len(entries)
            entry = {"StepName": name, "StepStatus": "Succeeded", "StartTime": t, "EndTime": t + 1,
                     "AttemptCount": 1, "Metadata": step_metadata(step, arn, outcome)}
            entry.update({k: step[v] for k, v in (("StepDisplayName", "DisplayName"),
                                                  ("StepDescription", "Description")) if v in step})
            entries.append(entry)
            if step.get("Type") == "Fail":
                entry.update(StepStatus="Failed", FailureReason=entry["Metadata"]["Fail"]["ErrorMessage"])
                return False
            if step.get("Type") == "Condition":
                args = step.get("Arguments") or {}
                if not walk(args.get("IfSteps" if outcome else "ElseSteps") or []):
                    return False
        return True

    walk(definition.get("Steps") or [])
    return entries


def status_from_steps(steps: list[dict[str, Any]]) -> tuple[str, str] | None:
    statuses = {s.get("StepStatus") for s in steps}
    if "Failed" in statuses:
        return "Failed", "Step failure: One or multiple steps failed."
    if "Stopping" in statuses:
        return "Stopping", ""
    if statuses & {"Starting", "Executing"}:
        return "Executing", ""
    return ("Stopped", "") if "Stopped" in statuses else None



# ---------------------------------------------------------------------------------- variants and weights
def variant_weight(variant: dict[str, Any]) -> float:
    """``InitialVariantWeight`` of a config variant (SageMaker's default is 1.0)."""
    return float(variant.get("InitialVariantWeight", 1.0))


def validate_endpoint_config(production: list[dict[str, Any]], shadow: list[dict[str, Any]]) -> str | None:
    """CreateEndpointConfig rules botocore does not check: unique names, shadow layout, a positive total weight."""
    names = [str(v.get("VariantName", "")) for v in production + shadow]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        return f"Variant names must be unique across ProductionVariants and ShadowProductionVariants: {dupes}."
    if shadow and (len(shadow) != 1 or len(production) != 1):
        return ("When ShadowProductionVariants is specified, ProductionVariants and ShadowProductionVariants must "
                f"each contain exactly one variant; got {len(production)} and {len(shadow)}.")
    if any(variant_weight(v) < 0 for v in production + shadow):
        return "InitialVariantWeight must be greater than or equal to 0."
    if production and sum(variant_weight(v) for v in production) <= 0:
        return "The sum of InitialVariantWeight over ProductionVariants must be greater than 0."
    return None


def variant_summary(variant: dict[str, Any]) -> dict[str, Any]:
    """A config variant as DescribeEndpoint shows it once deployed (Current = Desired)."""
    weight = variant_weight(variant)
    summary: dict[str, Any] = {"VariantName": variant["VariantName"], "CurrentWeight": weight, "DesiredWeight": weight}
    if "InitialInstanceCount" in variant:
        summary.update(CurrentInstanceCount=variant["InitialInstanceCount"],
                       DesiredInstanceCount=variant["InitialInstanceCount"])
    return summary


def validate_weights(desired: list[dict[str, Any]], production: list[dict[str, Any]],
                     shadow: list[dict[str, Any]]) -> str | None:
    """UpdateEndpointWeightsAndCapacities rules: unique, existing variants; weights >= 0; production total > 0."""
    known = {v["VariantName"] for v in production + shadow}
    seen: list[str] = []
    for item in desired:
        name = item.get("VariantName", "")
        if name in seen:
            return f'The variant name "{name}" was non-unique within the request.'
        if name not in known:
            return f'The variant name(s) "{name}" is/are not present within the endpoint configuration.'
        if float(item.get("DesiredWeight", 0)) < 0:
            return f"DesiredWeight of variant {name} must be greater than or equal to 0."
        if "DesiredInstanceCount" in item and int(item["DesiredInstanceCount"]) < 1:
            return f"DesiredInstanceCount of variant {name} must be at least 1."
        seen.append(name)
    weights = {v["VariantName"]: float(v.get("CurrentWeight", 0)) for v in production}
    weights.update({i["VariantName"]: float(i["DesiredWeight"]) for i in desired
                    if i["VariantName"] in weights and "DesiredWeight" in i})
    if weights and sum(weights.values()) <= 0:
        return "The sum of the weights of the production variants must be greater than 0."
    return None


def apply_weights(desired: list[dict[str, Any]], variants: list[dict[str, Any]]) -> None:
    """Make the desired weights and counts current (in place)."""
    by_name = {v["VariantName"]: v for v in variants}
    for item in desired:
        variant = by_name.get(item["VariantName"])
        if variant is None:
            continue
        if "DesiredWeight" in item:
            variant["CurrentWeight"] = variant["DesiredWeight"] = float(item["DesiredWeight"])
        if "DesiredInstanceCount" in item:
            variant["CurrentInstanceCount"] = variant["DesiredInstanceCount"] = int(item["DesiredInstanceCount"])
