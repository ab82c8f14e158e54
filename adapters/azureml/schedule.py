"""Pipeline schedules on Azure ML: a job schedule (``JobSchedule``) with a ``CronTrigger`` that creates the
compiled pipeline job.

Pure, like the compiler: :func:`schedule_document` builds the schedule YAML (CLI v2 schema) that points
at the job YAML beside it; :meth:`AzureMLAdapter.apply_schedule` loads both with azure-ai-ml's
``load_schedule`` and sends them with ``ml_client.schedules.begin_create_or_update``.

* cron: Azure ML reads five NCrontab fields but **ignores day-of-month and month** (the schedule docs:
  "values passed for these parameters are ignored and treated as ``*``"), so a cron that restricts
  either is refused rather than silently run every day. Minutes, hours and weekdays are written as
  explicit lists of numbers (weekdays 0-6, Sunday 0), with no ranges, steps or names to translate.
* time zone: Azure ML takes Windows time zone names ("Specifies time zone in which the schedule runs.
  TimeZone should follow Windows time zone format", the REST reference); the spec's IANA zone is mapped
  through CLDR's table (timezones.py). A zone without a Windows zone in azure-ai-ml's list is refused.
* parameters: ``schedule.parameters`` override the job's inputs (``create_job.inputs``); the other
  inputs keep the compiled job's defaults. ``enabled: false`` creates the schedule disabled.

Example:
    >>> azure_cron("30 2 * * MON-FRI"), azure_cron("*/20 * * * *")
    ('30 2 * * 1,2,3,4,5', '0,20,40 * * * *')
"""

from __future__ import annotations

import re
from typing import Any

from cloudml.adapters.azureml.timezones import windows_zone
from cloudml.cron import parse_cron
from cloudml.errors import CompileError, UnsupportedFeatureError

__all__ = ["JOB_FILE", "SCHEMA", "azure_cron", "azure_time_zone", "schedule_document", "schedule_name",
           "uri_input"]

SCHEMA = "https://azuremlschemas.azureedge.net/latest/schedule.schema.json"
JOB_FILE = "job.yaml"  # the compiled pipeline job, written beside the schedule YAML
_FULL = {"minute": 60, "hour": 24, "weekday": 7}


def _refuse(reason: str, hint: str) -> UnsupportedFeatureError:
    return UnsupportedFeatureError("azureml", None, "schedule", reason, hint=hint)


def _values(values: frozenset[int], size: int) -> str:
    return "*" if len(values) == size else ",".join(str(v) for v in sorted(values))


def azure_cron(expression: str) -> str:
    """A five-field Unix cron expression as the NCrontab expression an Azure ML ``CronTrigger`` takes.

    Example:
        >>> azure_cron("0 3 * * *"), azure_cron("15 8-10 * * 0,7")
        ('0 3 * * *', '15 8,9,10 * * 0')
        >>> azure_cron("0 3 1 * *")
        Traceback (most recent call last):
        cloudml.errors.UnsupportedFeatureError: azureml cannot express 'schedule': cron '0 3 1 * *' restricts the day of the month; Azure ML schedules ignore the day-of-month and month fields (they run as '*')
    """
    c = parse_cron(expression)
    if len(c.days) != 31 or len(c.months) != 12:
        field = "day of the month" if len(c.days) != 31 else "month"
        raise _refuse(f"cron '{expression}' restricts the {field}; Azure ML schedules ignore the day-of-month and "
                      "month fields (they run as '*')",
                      hint="schedule on minutes, hours and weekdays only, and let the first step skip the days "
                           "it should not run on")
    return " ".join([_values(c.minutes, _FULL["minute"]), _values(c.hours, _FULL["hour"]), "*", "*",
                     _values(c.weekdays, _FULL["weekday"])])


def azure_time_zone(iana: str) -> str:
    """The Windows time zone name for the spec's IANA zone; UnsupportedFeatureError when Azure ML has none.

    Example:
        >>> azure_time_zone("Europe/Berlin"), azure_time_zone("UTC")
        ('W. Europe Standard Time', 'UTC')
    """
    name = windows_zone(iana)
    if name is None:
        raise _refuse(f"time zone '{iana}' has no Windows time zone among those Azure ML schedules take "
                      "(azure.ai.ml.constants.TimeZone)",
                      hint="use an IANA zone with the same offsets that Azure ML knows, e.g. the capital of the "
                           "same country, or UTC")
    return name


def schedule_name(pipeline: str) -> str:
    """The Azure ML schedule name cloudml uses for a pipeline.

    Example:
        >>> schedule_name("churn-train")
        'cloudml_churn_train'
    """
    return re.sub(r"[^A-Za-z0-9_]", "_", f"cloudml_{pipeline}")[:255]


def uri_input(name: str, current: Any, value: Any) -> Any:
    """A parameter value as a pipeline input: a URI parameter (``input.parameter``) keeps its asset type.

    ``current`` is the compiled job's input; a literal stays a literal. A URI Azure ML cannot read
    (``s3://``, ``gs://``, a local path) is refused naming the parameter.

    Example:
        >>> uri_input("data", {"type": "uri_folder", "path": "azureml://datastores/d/paths/a/"},
        ...           "azureml://datastores/d/paths/b/")
        {'type': 'uri_folder', 'path': 'azureml://datastores/d/paths/b/'}
        >>> uri_input("n", 3, 5)
        5
    """
    if not (isinstance(current, dict) and "path" in current):
        return value
    from cloudml.adapters.azureml.compiler import check_uri

    check_uri(name, str(value), None)
    kind = "uri_folder" if str(value).endswith("/") else "uri_file"
    if kind != current.get("type"):
        raise CompileError(f"parameter {name}: '{value}' is a {kind.removeprefix('uri_')} but the pipeline reads "
                           f"a {str(current.get('type')).removeprefix('uri_')} there (its default "
                           f"'{current.get('path')}')", hint="a folder URI ends with '/', a file URI does not")
    return {**current, "path": value}


def schedule_document(pipeline: Any, job: dict[str, Any], job_file: str = JOB_FILE) -> dict[str, Any]:
    """The schedule YAML (``load_schedule``'s schema) for the pipeline's ``schedule:``; ``job`` is the
    compiled pipeline job, to be written as ``job_file`` beside it.

    Example:
        >>> import cloudml
        >>> from cloudml.adapters.azureml.compiler import compile_job
        >>> b = cloudml.PipelineBuilder("p", schedule={"cron": "0 3 * * 1-5", "timezone": "Europe/Paris",
        ...                                            "parameters": {"n": 5}})
        >>> _ = b.param("n", int, 1); _ = b.add_step("a", command="echo {{params.n}}", image="i")
        >>> p = b.build(); doc = schedule_document(p, compile_job(p, None))
        >>> doc["trigger"], doc["create_job"]["inputs"]
        ({'type': 'cron', 'expression': '0 3 * * 1,2,3,4,5', 'time_zone': 'Romance Standard Time'}, {'n': 5})
    """
    s = pipeline.schedule
    if s is None:
        raise CompileError(f"pipeline '{pipeline.name}' has no schedule",
                           hint="add `schedule: {cron: \"0 3 * * *\"}` to the pipeline")
    values = pipeline.resolve_parameters(dict(s.parameters))  # also: required parameters have values
    inputs = job.get("inputs") or {}
    create_job: dict[str, Any] = {"type": "pipeline", "job": f"./{job_file}",
                                  "experiment_name": job.get("experiment_name") or pipeline.name}
    if s.parameters:
        create_job["inputs"] = {k: uri_input(k, inputs.get(k), values[k]) for k in s.parameters}
    return {"$schema": SCHEMA, "name": schedule_name(pipeline.name), "display_name": pipeline.name,
            "description": f"cloudml: runs Azure ML pipeline {pipeline.name}",
            "trigger": {"type": "cron", "expression": azure_cron(s.cron), "time_zone": azure_time_zone(s.timezone)},
            "create_job": create_job}
