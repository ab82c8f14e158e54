"""Pipeline schedules on AWS: an EventBridge Scheduler schedule that starts the SageMaker pipeline.

Pure: builds the ``CreateSchedule`` request; ``SageMakerClient.upsert_schedule`` sends it.

* cron: the spec's five Unix fields become EventBridge's six (``cron(min hour dom month dow year)``).
  EventBridge wants ``?`` in day-of-month or day-of-week and counts weekdays 1-7 from Sunday; every
  restricted field is written as the explicit list of its values (no step or name syntax to
  translate). A day-of-month **and** a day-of-week together (cron's "either" rule) cannot be said
  in EventBridge and is refused.
* time zone: ``ScheduleExpressionTimezone``; parameters: ``SageMakerPipelineParameters``;
  ``enabled: false``: ``State: DISABLED``.
* the target role (``Target.RoleArn``) must be assumable by ``scheduler.amazonaws.com`` and allow
  ``sagemaker:StartPipelineExecution`` on the pipeline.

Example:
    >>> aws_cron("30 2 * * MON-FRI")
    'cron(30 2 ? * 2,3,4,5,6 *)'
"""

from __future__ import annotations

import re
from typing import Any

from cloudml.cron import parse_cron
from cloudml.errors import CompileError

__all__ = ["aws_cron", "schedule_name", "schedule_request"]


def _values(field: str, allowed: frozenset[int], shift: int = 0) -> str:
    return "*" if field == "*" else ",".join(str(v + shift) for v in sorted(allowed))


def aws_cron(expression: str) -> str:
    """A five-field Unix cron expression as an EventBridge Scheduler ``cron(...)`` expression.

    Example:
        >>> aws_cron("*/15 * * * *"), aws_cron("0 3 1 * *"), aws_cron("0 0 * * 0,7")
        ('cron(0,15,30,45 * * * ? *)', 'cron(0 3 1 * ? *)', 'cron(0 0 ? * 1 *)')
    """
    c = parse_cron(expression)
    minute, hour, dom, month, dow = expression.split()
    if dom != "*" and dow != "*":
        raise CompileError(f"cron '{expression}' sets both day-of-month and day-of-week (a day matching either "
                           "fires); EventBridge Scheduler cannot express that",
                           hint="use one of them, or two pipelines with one schedule each")
    days = "?" if dow != "*" else _values(dom, c.days)
    weekdays = "?" if dow == "*" else _values(dow, c.weekdays, shift=1)
    return f"cron({_values(minute, c.minutes)} {_values(hour, c.hours)} {days} {_values(month, c.months)} {weekdays} *)"


def schedule_name(pipeline: str) -> str:
    """The EventBridge schedule name cloudml uses for a pipeline (1-64 of ``[0-9a-zA-Z-_.]``).

    Example:
        >>> schedule_name("churn-train")
        'cloudml-churn-train'
    """
    return re.sub(r"[^0-9a-zA-Z._-]", "-", f"cloudml-{pipeline}")[:64]


def schedule_request(pipeline: Any, pipeline_arn: str, role_arn: str) -> dict[str, Any]:
    """The ``scheduler.create_schedule`` (and ``update_schedule``) arguments for the pipeline's schedule.

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p", schedule={"cron": "0 3 * * *", "parameters": {"n": 5}})
        >>> _ = b.param("n", int, 1); _ = b.add_step("a", command="echo {{params.n}}", image="i")
        >>> r = schedule_request(b.build(), "arn:aws:sagemaker:eu-west-1:1:pipeline/p", "arn:aws:iam::1:role/r")
        >>> r["ScheduleExpression"], r["Target"]["SageMakerPipelineParameters"]
        ('cron(0 3 * * ? *)', {'PipelineParameterList': [{'Name': 'n', 'Value': '5'}]})
    """
    s = pipeline.schedule
    if s is None:
        raise CompileError(f"pipeline '{pipeline.name}' has no schedule",
                           hint="add `schedule: {cron: \"0 3 * * *\"}` to the pipeline")
    values = pipeline.resolve_parameters(dict(s.parameters))  # also: required parameters have values
    target: dict[str, Any] = {"Arn": pipeline_arn, "RoleArn": role_arn}
    if s.parameters:
        target["SageMakerPipelineParameters"] = {"PipelineParameterList": [
            {"Name": k, "Value": _text(values[k])} for k in s.parameters]}
    return {
        "Name": schedule_name(pipeline.name),
        "ScheduleExpression": aws_cron(s.cron),
        "ScheduleExpressionTimezone": s.timezone,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED" if s.enabled else "DISABLED",
        "Description": f"cloudml: runs SageMaker pipeline {pipeline.name}",
        "Target": target,
    }


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
