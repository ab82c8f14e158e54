"""Minimal specs, one per feature in cloudml.adapter.FEATURES, plus a reference pipeline.

Each case uses its feature and as little else as possible, so a test can check that an adapter
either compiles it or raises UnsupportedFeatureError naming that feature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cloudml
from cloudml.spec.deployment import Deployment
from cloudml.spec.pipeline import Pipeline


def _pipeline(step: dict[str, Any], *, extra_steps: list[dict[str, Any]] | None = None,
              params: dict[str, Any] | None = None, **top: Any) -> Pipeline:
    doc: dict[str, Any] = {"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "case",
                           "defaults": {"image": "python:3.11-slim"}, "steps": [step, *(extra_steps or [])], **top}
    if params:
        doc["parameters"] = params
    model = cloudml.loads(cloudml.dumps(_validate(doc)))
    assert isinstance(model, Pipeline)
    return model


def _validate(doc: dict[str, Any]) -> Pipeline | Deployment:
    from cloudml.spec.validate import validate_data

    return validate_data(doc)


def _task(**fields: Any) -> dict[str, Any]:
    return {"name": "work", "command": "python work.py", **fields}


_METRICS = {"name": "evaluate", "command": "python ev.py --out {{outputs.metrics}}", "outputs": {"metrics": "metrics"}}


def reference_pipeline() -> Pipeline:
    """processing -> training -> evaluation -> condition -> register, otherwise fail."""
    model = cloudml.loads(
        """
apiVersion: cloudml/v1
kind: Pipeline
name: reference
parameters:
  input_uri: {type: string, default: "s3://bucket/data/churn.csv"}
  n_estimators: {type: int, default: 200, min: 10, max: 2000}
  min_auc: {type: float, default: 0.8}
defaults: {framework: sklearn==1.2, timeout: 1h}
steps:
  - name: prep
    command: python prep.py --data {{inputs.raw}} --train {{outputs.train}} --test {{outputs.test}}
    inputs: {raw: "{{params.input_uri}}"}
    outputs: {train: dataset, test: dataset}
  - name: train
    kind: training
    command: python train.py --train {{inputs.train}} --model {{outputs.model}} --n {{params.n_estimators}}
    inputs: {train: prep.outputs.train}
    outputs: {model: model}
  - name: evaluate
    command: python ev.py --model {{inputs.model}} --test {{inputs.test}} --metrics {{outputs.metrics}}
    inputs: {model: train.outputs.model, test: prep.outputs.test}
    outputs: {metrics: metrics}
  - name: gate
    condition: evaluate.outputs.metrics["auc"] >= params.min_auc
    then: [register]
    else: [too-low]
  - name: register
    register_model: {model: train.outputs.model, group: churn, metrics: evaluate.outputs.metrics,
                     framework: sklearn==1.2}
  - name: too-low
    fail: "AUC below {{params.min_auc}}"
"""
    )
    assert isinstance(model, Pipeline)
    return model


def gcs_reference_pipeline() -> Pipeline:
    """The reference shape with Cloud Storage data, explicit images and a publish step (no registry)."""
    model = cloudml.loads(
        """
apiVersion: cloudml/v1
kind: Pipeline
name: gcs-reference
parameters:
  n_estimators: {type: int, default: 200}
  min_auc: {type: float, default: 0.8}
defaults: {image: python:3.11-slim, timeout: 1h, retry: {attempts: 3, backoff: 10s}}
steps:
  - name: prep
    command: python prep.py --data {{inputs.raw}} --train {{outputs.train}} --test {{outputs.test}}
    inputs: {raw: "gs://bucket/data/churn.csv"}
    outputs: {train: dataset, test: dataset}
  - name: train
    kind: training
    command: python train.py --train {{inputs.train}} --model {{outputs.model}} --n {{params.n_estimators}}
    inputs: {train: prep.outputs.train}
    outputs: {model: model}
    resources: {cpu: 4, memory: 16Gi, gpu: 1, gpu_type: nvidia-t4}
  - name: evaluate
    command: python ev.py --model {{inputs.model}} --test {{inputs.test}} --metrics {{outputs.metrics}}
    inputs: {model: train.outputs.model, test: prep.outputs.test}
    outputs: {metrics: metrics}
  - name: gate
    condition: evaluate.outputs.metrics["auc"] >= params.min_auc and evaluate.outputs.metrics["loss"] < 0.5
    then: [publish]
    else: [too-low]
  - name: publish
    command: python publish.py {{inputs.model}} --trees {{params.n_estimators}}
    inputs: {model: train.outputs.model}
  - name: too-low
    fail: "AUC below {{params.min_auc}}"
"""
    )
    assert isinstance(model, Pipeline)
    return model


def azure_reference_pipeline() -> Pipeline:
    """Processing and training on datastore data, with an image, compute and a fail step (no gate)."""
    model = cloudml.loads(
        """
apiVersion: cloudml/v1
kind: Pipeline
name: azure-reference
parameters:
  n_estimators: {type: int, default: 200}
  label: {type: string, default: churned}
defaults: {image: "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04", timeout: 1h}
backend_options: {azureml: {compute: cpu-cluster}}
steps:
  - name: prep
    command: python prep.py --data {{inputs.raw}} --label {{params.label}} --train {{outputs.train}} --test {{outputs.test}}
    inputs: {raw: "azureml://datastores/workspaceblobstore/paths/churn.csv"}
    outputs: {train: dataset, test: dataset}
  - name: train
    command: python train.py --train {{inputs.train}} --model {{outputs.model}} --n {{params.n_estimators}}
    inputs: {train: prep.outputs.train}
    outputs: {model: model}
    resources: {cpu: 4, memory: 16Gi}
  - name: evaluate
    command: python ev.py --model {{inputs.model}} --test {{inputs.test}} --metrics {{outputs.metrics}}
    inputs: {model: train.outputs.model, test: prep.outputs.test}
    outputs: {metrics: metrics}
    cache: false
"""
    )
    assert isinstance(model, Pipeline)
    return model


def tuning_pipeline() -> Pipeline:
    """processing -> tuning (random search, best model kept) -> evaluation of the best model -> register."""
    model = cloudml.loads(
        """
apiVersion: cloudml/v1
kind: Pipeline
name: tuning
parameters:
  input_uri: {type: string, default: "s3://bucket/data/churn.csv"}
defaults: {framework: sklearn==1.2, timeout: 1h}
steps:
  - name: prep
    command: python prep.py --data {{inputs.raw}} --train {{outputs.train}} --test {{outputs.test}}
    inputs: {raw: "{{params.input_uri}}"}
    outputs: {train: dataset, test: dataset}
  - name: train
    kind: training
    command: >-
      python train.py --train {{inputs.train}} --lr {{tuning.lr}} --depth {{tuning.depth}}
      --kernel {{tuning.kernel}} --model {{outputs.model}} --metrics {{outputs.metrics}}
    inputs: {train: prep.outputs.train}
    outputs: {model: model, metrics: metrics}
    tuning:
      search_space:
        lr: {type: float, min: 0.0001, max: 0.1, scale: log}
        depth: {type: int, min: 2, max: 10}
        kernel: {type: categorical, values: [rbf, linear]}
      objective: {metric: metrics.auc, goal: maximize}
      strategy: random
      max_trials: 12
      parallel_trials: 3
      seed: 0
  - name: evaluate
    command: python ev.py --model {{inputs.model}} --test {{inputs.test}} --metrics {{outputs.metrics}}
    inputs: {model: train.outputs.model, test: prep.outputs.test}
    outputs: {metrics: metrics}
  - name: register
    register_model: {model: train.outputs.model, group: churn, metrics: evaluate.outputs.metrics,
                     framework: sklearn==1.2}
"""
    )
    assert isinstance(model, Pipeline)
    return model


def _deployment(**fields: Any) -> Deployment:
    doc = {"apiVersion": "cloudml/v1", "kind": "Deployment", "endpoint": "churn", "model": {"group": "churn"},
           "alarms": [{"name": "errors", "metric": "error_rate", "threshold": 0.01}], **fields}
    model = _validate(doc)
    assert isinstance(model, Deployment)
    return model


NATIVE_SCHEME = {"local": "file", "sagemaker": "s3", "vertex": "gs", "azureml": "azureml"}


def _native_uri(scheme: str, path: str) -> str:
    if scheme == "file":
        return f"file:///data/{path}"
    if scheme == "azureml":
        return f"azureml://datastores/ws/paths/{path}"
    return f"{scheme}://bucket/{path}"


def external_case(scheme: str) -> Pipeline:
    """A step reading an external URI in the given scheme (each cloud reads its own storage)."""
    return _pipeline(_task(command="python work.py {{inputs.raw}}", inputs={"raw": _native_uri(scheme, "raw.csv")}))


def parameter_input_case(scheme: str) -> Pipeline:
    """A step reading the URI a parameter holds, defaulting to the cloud's own storage."""
    return _pipeline(_task(command="python work.py {{inputs.raw}}", inputs={"raw": "{{params.uri}}"}),
                     params={"uri": {"type": "string", "default": _native_uri(scheme, "x/")}})


ADAPTER_AWARE = {"input.external": external_case, "input.parameter": parameter_input_case}


STRATEGIES: dict[str, dict[str, Any]] = {
    "ab_test": {"ab_test": {"percent": 50, "duration": "1h"}},
    "all_at_once": {"all_at_once": {}},
    "blue_green": {"blue_green": {"bake": "5m"}},
    "canary": {"canary": {"percent": 10, "bake": "10m"}},
    "linear": {"linear": {"step_percent": 25, "interval": "5m"}},
    "shadow": {"shadow": {"percent": 20, "duration": "10m", "promote": True}},
}

FEATURE_CASES: dict[str, Callable[[], Pipeline | Deployment]] = {
    "step.command": lambda: _pipeline(_task()),
    "step.python": lambda: _pipeline({"name": "work", "python": "src.job:run"}),
    "step.image": lambda: _pipeline(_task(image="python:3.11-slim")),
    "step.framework": lambda: _pipeline(_task(framework="sklearn==1.2")),
    "step.code": lambda: _pipeline(_task(code="./src")),
    "step.code_paths": lambda: _pipeline({"name": "work", "python": "job:run", "code": "./src",
                                                         "code_paths": ["./lib"]}),
    "step.env": lambda: _pipeline(_task(env={"MODE": "fast"})),
    "step.secrets": lambda: _pipeline(_task(secrets={"DB_PASSWORD": "aws-secretsmanager://db-pass"})),
    "step.training": lambda: _pipeline(_task(kind="training")),
    "step.resources": lambda: _pipeline(_task(resources={"cpu": 2, "memory": "8Gi"})),
    "step.gpu": lambda: _pipeline(_task(resources={"gpu": 1, "gpu_type": "nvidia-t4"})),
    "step.instance_count": lambda: _pipeline(_task(resources={"instance_count": 2})),
    "step.retry": lambda: _pipeline(_task(retry={"attempts": 3, "backoff": "5s"})),
    "step.timeout": lambda: _pipeline(_task(timeout="30m")),
    "step.cache": lambda: _pipeline(_task(cache=False)),
    "step.cache_expiry": lambda: _pipeline(_task(cache={"enabled": True, "expire": "7d"})),
    "step.depends_on": lambda: _pipeline(_task(depends_on=["first"]),
                                         extra_steps=[{"name": "first", "command": "python first.py"}]),
    "step.tuning": lambda: _pipeline(_task(
        kind="training", command="python work.py --lr {{tuning.lr}} --model {{outputs.model}} "
        "--metrics {{outputs.metrics}}", outputs={"model": "model", "metrics": "metrics"},
        tuning={"search_space": {"lr": {"type": "float", "min": 0.001, "max": 0.1, "scale": "log"}},
                "objective": {"metric": "metrics.auc", "goal": "maximize"}, "max_trials": 4, "parallel_trials": 2})),
    "input.external": lambda: external_case("s3"),
    "input.parameter": lambda: _pipeline(_task(command="python work.py {{inputs.raw}}",
                                               inputs={"raw": "{{params.uri}}"}),
                                         params={"uri": {"type": "string", "default": "gs://b/x"}}),
    "condition": lambda: _pipeline(_METRICS, extra_steps=[
        {"name": "gate", "condition": 'evaluate.outputs.metrics["auc"] > 0.5', "then": ["work"]}, _task()]),
    "condition.or": lambda: _pipeline(_METRICS, extra_steps=[
        {"name": "gate", "condition": 'evaluate.outputs.metrics["auc"] > 0.5 or evaluate.outputs.metrics["f1"] > 0.5',
         "then": ["work"]}, _task()]),
    "fail": lambda: _pipeline({"name": "stop", "fail": "always"}),
    "register_model": lambda: _pipeline(
        {"name": "train", "kind": "training", "command": "python t.py {{outputs.model}}", "outputs": {"model": "model"}},
        extra_steps=[{"name": "reg", "register_model": {"model": "train.outputs.model", "group": "g",
                                                        "image": "python:3.11-slim"}}]),
    "schedule": lambda: _pipeline(_task(), schedule={"cron": "0 3 * * *"}),
    **{f"deploy.{name}": (lambda s=s: _deployment(strategy=s)) for name, s in STRATEGIES.items()},
    "deploy.alarm": lambda: _deployment(strategy="blue_green"),
    "deploy.existing_alarm": lambda: _deployment(alarms=[{"name": "ext", "existing": {"sagemaker": "my-alarm"}}]),
    "deploy.autoscale": lambda: _deployment(instances={"count": 2, "autoscale": {"min": 1, "max": 4}}),
    "deploy.capture": lambda: _deployment(capture={"percent": 50}),
    "deploy.serving_image": lambda: _deployment(serving={"image": "registry.example.com/serve:1"}),
    "deploy.serving_env": lambda: _deployment(serving={"env": {"MODE": "fast"}}),
    "deploy.predictor": lambda: _deployment(serving={"predictor": "serve:Predictor"}),
    "deploy.auto_rollback": lambda: _deployment(rollback={"automatic": True, "termination_wait": "1m"}),
}
