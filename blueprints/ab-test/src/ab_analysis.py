"""The analysis of the ab-test blueprint: which variant answered better while the split was live.

Data: the endpoint's capture (``<root>/endpoints/<endpoint>/capture/*.jsonl``; each record holds the
request, the answer and the deployment that answered; or, with ``capture_uri``, SageMaker's or Azure
ML's capture files, read by :func:`cloudml.drift.capture_records`) joined with the labels that arrived later
(``labels.csv``: a request key and the true label, as ``ab_traffic.py`` writes them). Only records
captured while both variants took traffic count: the window starts when the rollout moved the split
to B and ends at the next traffic change (a promotion, a rollback, the end of the test).

Per variant: how many predictions were correct out of how many; the comparison is
:func:`cloudml.abtest.compare_rates` (two-proportion z-test). A = the live model (blue), B = the
challenger (green), as the rollout names them.

The step writes ``report/ab_test.md`` and ``report/ab_test.json`` and returns the metrics the
pipeline's conditions read: ``winner`` (``A``, ``B`` or ``none``), ``a_wins``/``b_wins`` (1 or 0),
``p_value``, ``confidence``, per-variant ``n_*`` and ``accuracy_*``. ``promote`` and ``rollback`` act
on the verdict through the backend (``cloudml rollout promote`` / ``cloudml rollback`` do the same).

Example:
    >>> rows = [{"deployment": "m-v1", "correct": i % 10 < 6} for i in range(200)]
    >>> rows += [{"deployment": "m-v2", "correct": i % 10 < 9} for i in range(200)]
    >>> result = compare(rows, "m-v1", "m-v2", alpha=0.05, min_per_variant=30)
    >>> result.winner, result.summary().split(":")[0]
    ('B', 'B wins on accuracy')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ab_steps import BLUEPRINT, StageError

__all__ = ["analyze", "compare", "promote", "rollback", "split_window"]


def _adapter() -> Any:
    """The backend this step runs on (the local one through CLOUDML_ROOT)."""
    import cloudml
    from cloudml.runtime import step_env

    backend = step_env("CLOUDML_BACKEND") or "local"
    if backend == "local":
        root = step_env("CLOUDML_ROOT")
        if not root:
            raise StageError("analyze", "no local backend root (CLOUDML_ROOT) in this step's environment",
                             "run the pipeline with cloudml run (or pass -p capture_uri=PATH)")
        return cloudml.get_adapter("local", root=root)
    return cloudml.get_adapter(backend)


def split_window(state: dict[str, Any]) -> tuple[float, float, str | None, str | None]:
    """``(start, end, A, B)`` of the last A/B split in a rollout state (``end`` is inf while it runs).

    Example:
        >>> state = {"blue": "m-v1", "green": "m-v2", "started": 5.0, "history": [
        ...     {"t": 9.0, "event": "traffic", "weights": {"m-v1": 50, "m-v2": 50}},
        ...     {"t": 20.0, "event": "traffic", "weights": {"m-v2": 100}}]}
        >>> split_window(state)
        (9.0, 20.0, 'm-v1', 'm-v2')
    """
    blue, green = state.get("blue"), state.get("green")
    start, end = float(state.get("started") or 0.0), float("inf")
    split_seen = False
    for event in state.get("history", []):
        if event.get("event") != "traffic" or float(event.get("t", 0)) < float(state.get("started") or 0.0):
            continue
        weights = event.get("weights", {})
        both = bool(weights.get(blue)) and bool(weights.get(green))
        if both and not split_seen:
            start, split_seen = float(event["t"]), True
        elif split_seen and not both:
            end = float(event["t"])
            break
    return start, end, blue, green


def _norm(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _records(capture: Path | str) -> list[dict[str, Any]]:
    """The captured requests with the deployment that answered, from any backend's capture files (local, or
    SageMaker's / Azure ML's downloaded or on S3): :func:`cloudml.drift.capture_records`."""
    from cloudml.drift import capture_records
    from cloudml.errors import DataError

    try:
        return list(capture_records(capture))
    except DataError as e:
        raise StageError("analyze", e.message.removeprefix(f"{e.stage}: "),
                         "deploy challenger.yaml (capture: {enabled: true}) and send traffic while the test runs, "
                         "or pass -p capture_uri=PATH to the endpoint's capture (local, SageMaker or Azure ML "
                         "files)") from None


def _labels(labels_uri: str, key: str, label: str) -> dict[str, str]:
    import pandas as pd

    path = Path(labels_uri) if Path(labels_uri).is_absolute() else BLUEPRINT / labels_uri
    if not path.is_file():
        raise StageError("analyze", f"labels_uri '{labels_uri}' does not exist (looked at {path})",
                         "pass -p labels_uri=PATH to a CSV of request keys and true labels "
                         "(python src/ab_traffic.py writes labels.csv)")
    frame = pd.read_csv(path, dtype={key: str})
    lacking = [c for c in (key, label) if c not in frame.columns]
    if lacking:
        raise StageError("analyze", f"{path.name} has no column {', '.join(map(repr, lacking))} "
                         f"(it has: {', '.join(map(str, frame.columns[:6]))})",
                         "pass -p key=COLUMN -p label=COLUMN naming the request key and the true label")
    return {str(k): _norm(v) for k, v in zip(frame[key], frame[label], strict=True)}


def compare(rows: list[dict[str, Any]], a: str, b: str, *, alpha: float, min_per_variant: int) -> Any:
    """The two-proportion test of correct predictions, A against B (``cloudml.abtest.compare_rates``).

    Example:
        >>> rows = [{"deployment": "a", "correct": True}] * 50 + [{"deployment": "b", "correct": True}] * 50
        >>> compare(rows, "a", "b", alpha=0.05, min_per_variant=10).winner is None
        True
    """
    from cloudml.abtest import compare_rates

    counts = {name: (sum(1 for r in rows if r["deployment"] == name and r["correct"]),
                     sum(1 for r in rows if r["deployment"] == name)) for name in (a, b)}
    few = [f"{name} ({counts[name][1]})" for name in (a, b) if counts[name][1] < max(min_per_variant, 1)]
    if few:
        raise StageError("analyze", f"too few labelled answers per variant: {', '.join(few)}, need {min_per_variant}",
                         "send more traffic while the split is live, or lower -p min_per_variant")
    return compare_rates("accuracy", counts[a], counts[b], alpha=alpha, names=(a, b))


def analyze(metrics: Path, report: Path, endpoint: str, labels_uri: str, key: str = "request_id",
            label: str = "target", alpha: float = 0.05, min_per_variant: int = 30,
            capture_uri: str = "") -> dict[str, Any]:
    """Join the captured answers with their labels, compare the variants, write the report; return the metrics.

    Example:
        >>> import contextlib, io, tempfile, time
        >>> d = Path(tempfile.mkdtemp()); now = time.time()
        >>> recs = [{"at": now, "deployment": dep, "request": {"instances": [{"request_id": f"{dep}{i}"}]},
        ...          "response": {"predictions": [1 if dep == "m-v2" or i % 3 else 0]}}
        ...         for dep in ("m-v1", "m-v2") for i in range(90)]
        >>> _ = (d / "c.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in recs))
        >>> _ = (d / "labels.csv").write_text("request_id,target\\n" + "".join(
        ...     f"{r['request']['instances'][0]['request_id']},1\\n" for r in recs))
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     m = analyze(d / "m.json", d, "m", str(d / "labels.csv"), capture_uri=str(d / "c.jsonl"))
        >>> m["winner"], m["n_a"], round(m["accuracy_a"], 3), m["accuracy_b"]
        ('B', 90.0, 0.667, 1.0)
    """
    state: dict[str, Any] = {}
    if capture_uri:
        capture: Path | str = (capture_uri if capture_uri.startswith("s3://") or Path(capture_uri).is_absolute()
                               else BLUEPRINT / capture_uri)
    else:
        adapter = _adapter()
        if not hasattr(adapter, "controller"):
            raise StageError("analyze", f"reading the capture of a {adapter.name} endpoint is not built yet",
                             "pass -p capture_uri=PATH to the endpoint's captured requests (JSON lines)")
        capture = Path(adapter.root) / "endpoints" / endpoint / "capture"
        state = adapter.rollout_state(endpoint) or {}
    records = _records(capture)
    labels = _labels(labels_uri, key, label)
    start, end, a, b = split_window(state) if state.get("green") else (float("-inf"), float("inf"), None, None)
    rows: list[dict[str, Any]] = []
    keyed = 0
    for rec in records:
        if not start <= float(rec.get("at", 0.0)) < end:
            continue
        instances = rec.get("request", {}).get("instances", [])
        predictions = (rec.get("response") or {}).get("predictions", [])
        for inst, pred in zip(instances, predictions, strict=False):
            k = inst.get(key) if isinstance(inst, dict) else None
            keyed += k is not None
            if k is not None and str(k) in labels:
                rows.append({"deployment": rec.get("deployment"), "correct": _norm(pred) == labels[str(k)]})
    seen = sorted({str(r["deployment"]) for r in rows})
    if not rows:
        why = (f"none of the captured rows carries the key '{key}'" if not keyed
               else f"none of the {keyed} keyed rows has a label in {labels_uri}")
        raise StageError("analyze", why, f"send instances with a '{key}' field (ab_traffic.py does) and write their "
                         "labels to labels_uri, or pass -p key=COLUMN")
    if a is None or b is None:  # no rollout state (capture_uri): the two deployments seen, oldest first
        if len(seen) != 2:
            raise StageError("analyze", f"expected two variants in the capture, found {len(seen)}: {', '.join(seen)}",
                             "capture while challenger.yaml (strategy ab_test) splits the traffic")
        a, b = sorted(seen, key=lambda n: (len(n), n))
    if a not in seen or b not in seen:
        raise StageError("analyze", f"only {', '.join(seen)} answered while the split was live (A={a}, B={b})",
                         "deploy challenger.yaml (strategy ab_test) and send traffic while it runs")
    result = compare(rows, a, b, alpha=alpha, min_per_variant=min_per_variant)
    act = {"A": f"keep A: cloudml rollback {endpoint}", "B": f"promote B: cloudml rollout promote {endpoint}"}
    decision = act.get(result.winner or "", "no decision: the test keeps running until its duration ends")
    header = (f"# A/B test on {endpoint}: {f'{result.winner} wins' if result.winner else 'inconclusive'}\n\n"
              f"A = {a} (live), B = {b} (challenger). Decision: **{decision}**.\n"
              f"Correct predictions among {len(rows)} labelled answers captured while the split was live.\n\n")
    markdown = header + result.to_markdown().replace("# A/B test on", "## The test: A/B test on", 1)
    (report / "ab_test.md").write_text(markdown)
    (report / "ab_test.json").write_text(json.dumps({
        **result.to_dict(), "endpoint": endpoint, "variant_a": a, "variant_b": b, "decision": decision,
        "labelled_rows": len(rows), "window": {"start": start, "end": None if end == float("inf") else end}},
        indent=2, default=str))
    print(markdown, end="")
    return {"winner": result.winner or "none", "a_wins": float(result.winner == "A"),
            "b_wins": float(result.winner == "B"), "p_value": result.p_value, "confidence": result.confidence,
            "n_a": float(result.a.n), "n_b": float(result.b.n), "accuracy_a": result.a.mean,
            "accuracy_b": result.b.mean, "difference": result.difference}


def _act(action: str, endpoint: str) -> dict[str, Any]:
    from cloudml.errors import CloudMLError

    try:
        adapter = _adapter()
        result = adapter.promote(endpoint) if action == "promote" else adapter.rollback(endpoint)
    except CloudMLError as e:
        verb = "roll back" if action == "rollback" else action
        raise StageError(action, f"cannot {verb} {endpoint}: {e}",
                         f"see `cloudml rollout history {endpoint}`: the A/B test may have ended already") from e
    print(f"{action}: {endpoint} {result.outcome.value} ({result.reason})")
    return {"done": 1.0, "outcome": result.outcome.value}


def promote(endpoint: str, outcome: Path) -> dict[str, Any]:
    """B won: move all traffic to B now and retire A (what ``cloudml rollout promote ENDPOINT`` does).

    Example (no A/B test runs on this endpoint, so the step says what to check):
        >>> import tempfile
        >>> from cloudml.runtime import set_step_env
        >>> set_step_env({"CLOUDML_BACKEND": "local", "CLOUDML_ROOT": tempfile.mkdtemp()})
        >>> promote("nowhere", Path("m.json"))
        Traceback (most recent call last):
        ...
        tabular_steps.StageError: [promote] cannot promote nowhere: ... — fix: see `cloudml rollout history nowhere`: ...
        >>> set_step_env(None)
    """
    return _act("promote", endpoint)


def rollback(endpoint: str, outcome: Path) -> dict[str, Any]:
    """A won: send all traffic back to A now and remove B (what ``cloudml rollback ENDPOINT`` does).

    Example (no A/B test runs on this endpoint, so the step says what to check):
        >>> import tempfile
        >>> from cloudml.runtime import set_step_env
        >>> set_step_env({"CLOUDML_BACKEND": "local", "CLOUDML_ROOT": tempfile.mkdtemp()})
        >>> rollback("nowhere", Path("m.json"))
        Traceback (most recent call last):
        ...
        tabular_steps.StageError: [rollback] cannot roll back nowhere: ... — fix: see `cloudml rollout history nowhere`: ...
        >>> set_step_env(None)
    """
    return _act("rollback", endpoint)
