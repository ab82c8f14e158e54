"""Validation beyond field types: references, placeholders, cycles, conditions, parameter ranges.

Every problem becomes an :class:`cloudml.errors.Issue` with the path inside the document, the
step, what was expected and a fix; :func:`validate_document` adds file:line:column and raises one
:class:`cloudml.SpecError` with all of them.

Example:
    >>> import cloudml
    >>> try:
    ...     cloudml.loads('''
    ... apiVersion: cloudml/v1
    ... kind: Pipeline
    ... name: p
    ... steps:
    ...   - {name: a, command: "cat {{inputs.x}}", inputs: {x: b.outputs.o}, outputs: {o: dataset}}
    ...   - {name: b, command: "cat {{inputs.x}}", inputs: {x: a.outputs.o}, outputs: {o: dataset}}
    ... ''')
    ... except cloudml.SpecError as e:
    ...     print(e.issues[0].message)
    cycle: a -> b -> a
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from cloudml.dag import StepGraph
from cloudml.errors import Issue, SpecError
from cloudml.loader import Document, Loc, _fmt
from cloudml.spec.conditions import LiteralOperand, MetricOperand, ParamOperand
from cloudml.spec.deployment import Deployment
from cloudml.spec.pipeline import Parameter, Pipeline
from cloudml.spec.refs import ExternalRef, ParamSourceRef, StepOutputRef, find_placeholders, uri_scheme_error
from cloudml.spec.steps import ConditionStep, FailStep, RegisterModelStep, Step, TaskStep

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["check_pipeline", "validate_data", "validate_document", "validate_model"]

_KINDS: dict[str, type[Pipeline] | type[Deployment]] = {"Pipeline": Pipeline, "Deployment": Deployment}
_step_adapter: TypeAdapter[Any] = TypeAdapter(Step)
_param_adapter: TypeAdapter[Parameter] = TypeAdapter(Parameter)


def _known_fields() -> list[str]:
    from cloudml.spec import deployment, pipeline, steps

    names: set[str] = set()
    for mod in (deployment, pipeline, steps):
        for obj in vars(mod).values():
            fields = getattr(obj, "model_fields", None)
            if isinstance(fields, dict):
                for fname, info in fields.items():
                    names.add(info.alias or fname)
    return sorted(names)


def _suggest(word: str, options: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return close[0] if close else None


def _issue(msg: str, loc: Loc, *, step: str | None = None, expected: str | None = None,
           fix: str | None = None, code: str = "invalid") -> Issue:
    return Issue(msg, path=_fmt(loc), step=step, expected=expected, fix=fix, code=code, loc=loc)


def _has(cur: Any, part: Any) -> bool:
    if isinstance(cur, dict):
        return isinstance(part, str) and part in cur
    return isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)


def _walk_loc(data: Any, loc: tuple[Any, ...], missing: bool) -> Loc:
    """Map a pydantic error location onto the document: drop union members and step tags."""
    out: list[str | int] = []
    cur = data
    for i, part in enumerate(loc):
        if _has(cur, part):
            out.append(part)
            cur = cur[part]
        elif missing and i == len(loc) - 1 and isinstance(part, str):
            out.append(part)
        elif isinstance(cur, dict) and part == "from_" and "from" in cur:
            out.append("from")
            cur = cur["from"]
    return tuple(out)


def _pydantic_issues(err: ValidationError, data: Any, prefix: Loc = ()) -> list[Issue]:
    grouped: dict[Loc, list[Any]] = {}
    for e in err.errors(include_url=False):
        loc = _walk_loc(data, tuple(e["loc"]), e["type"] == "missing")
        grouped.setdefault(prefix + loc, []).append(e)
    issues: list[Issue] = []
    known = None
    for loc, errs in grouped.items():
        first = errs[0]
        kind = first["type"]
        if kind == "extra_forbidden":
            known = known or _known_fields()
            field = str(loc[-1]) if loc else "?"
            close = _suggest(field, known)
            issues.append(_issue(f"unknown field '{field}'", loc,
                                 fix=f"did you mean '{close}'?" if close else "remove it",
                                 code="unknown_field"))
            continue
        if kind == "missing":
            issues.append(_issue(f"missing required field '{loc[-1] if loc else '?'}'", loc, fix="add it",
                                 code="missing_field"))
            continue
        if kind in _SUB_KEY:
            key = _SUB_KEY[kind]
            if isinstance(_at(data, loc[len(prefix):]), dict) and key in _at(data, loc[len(prefix):]):
                loc = (*loc, key)
        msgs = list(dict.fromkeys(_clean(e["msg"]) for e in errs))
        message = msgs[0] if len(msgs) == 1 else "expected one of: " + "; ".join(msgs)
        issues.append(_issue(message, loc, code=kind))
    return issues


_SUB_KEY = {"parameter_default": "default", "parameter_allowed": "allowed"}


def _at(data: Any, loc: Loc) -> Any:
    for part in loc:
        data = data[part]
    return data


def _clean(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


def _step_name(data: Any, loc: Loc) -> str | None:
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int) and isinstance(data, dict):
        steps = data.get("steps")
        if isinstance(steps, list) and loc[1] < len(steps) and isinstance(steps[loc[1]], dict):
            name = steps[loc[1]].get("name")
            return name if isinstance(name, str) else None
    return None


def check_pipeline(params: dict[str, Parameter], steps: Sequence[tuple[int, Any]], all_names: list[str],
                   schedule_params: dict[str, Any] | None = None) -> list[Issue]:
    """Semantic checks over (possibly partially) valid parts of a pipeline.

    ``steps`` holds ``(index, step model)`` for steps that parsed; ``all_names`` holds the names of
    every step in the document, parsed or not, so one bad step does not cause spurious errors.

    Example:
        >>> from cloudml.spec.steps import TaskStep
        >>> step = TaskStep(name="b", command="cat {{inputs.x}}", inputs={"x": "a.outputs.o"})
        >>> [i.message for i in check_pipeline({}, [(0, step)], ["b"])]
        ["unknown step 'a'"]
    """
    issues: list[Issue] = []
    by_name: dict[str, Any] = {}
    for idx, s in steps:
        if s.name in by_name:
            issues.append(_issue(f"duplicate step name '{s.name}'", ("steps", idx, "name"), step=s.name,
                                 fix="step names must be unique; rename one", code="duplicate_step"))
        else:
            by_name[s.name] = s
    known = set(all_names)
    branch_owner: dict[str, str] = {}
    for idx, s in steps:
        base: Loc = ("steps", idx)
        for j, dep in enumerate(s.depends_on):
            if dep == s.name:
                issues.append(_issue("a step cannot depend on itself", (*base, "depends_on", j), step=s.name))
            elif dep not in known:
                issues.append(_unknown_step(dep, known, (*base, "depends_on", j), s.name))
        if isinstance(s, TaskStep):
            issues += _check_task(s, base, params, by_name, known)
        elif isinstance(s, ConditionStep):
            issues += _check_condition(s, base, params, by_name, known, branch_owner)
        elif isinstance(s, FailStep):
            issues += _check_text(s.fail, (*base, "fail"), s.name, params, allowed=("params",))
        elif isinstance(s, RegisterModelStep):
            issues += _check_register(s, base, by_name, known)
    for name, value in (schedule_params or {}).items():
        loc: Loc = ("schedule", "parameters", name)
        if name not in params:
            issues.append(_issue(f"unknown parameter '{name}'", loc, fix=_did_you_mean(name, params)))
        else:
            try:
                params[name].check(value)
            except ValueError as e:
                issues.append(_issue(f"parameter '{name}': {e}", loc, code="parameter_range"))
    for name, p in params.items():
        if p.default is not None:
            try:
                p.check(p.default)
            except ValueError as e:
                issues.append(_issue(f"default of '{name}': {e}", ("parameters", name, "default"),
                                     code="parameter_range"))
    graph = StepGraph.from_steps([s for _, s in steps])
    index_of = {s.name: i for i, s in steps}
    for cycle in graph.find_cycles():
        if len(cycle) == 2:
            continue  # a step on itself: reported above with a specific message
        issues.append(_issue("cycle: " + " -> ".join(cycle), ("steps", index_of[cycle[0]]), step=cycle[0],
                             fix="remove one of these references so the steps can run in order", code="cycle"))
    return issues


def _did_you_mean(name: str, options: Iterable[str]) -> str:
    close = _suggest(name, options)
    opts = list(options)
    if close:
        return f"did you mean '{close}'?"
    return f"declared: {', '.join(opts)}" if opts else "declare it first"


def _unknown_step(name: str, known: set[str], loc: Loc, step: str) -> Issue:
    return _issue(f"unknown step '{name}'", loc, step=step, fix=_did_you_mean(name, sorted(known)),
                  code="unknown_step")


def _check_output_ref(ref: StepOutputRef, loc: Loc, step: str, by_name: dict[str, Any], known: set[str],
                      want: str | None = None) -> list[Issue]:
    if ref.step not in known:
        return [_unknown_step(ref.step, known, loc, step)]
    producer = by_name.get(ref.step)
    if producer is None:
        return []  # that step failed to parse; it is reported on its own
    if not isinstance(producer, TaskStep):
        return [_issue(f"step '{ref.step}' produces no outputs", loc, step=step, code="unknown_output")]
    out = producer.outputs.get(ref.output)
    if out is None:
        return [_issue(f"step '{ref.step}' has no output '{ref.output}'", loc, step=step,
                       fix=_did_you_mean(ref.output, producer.outputs), code="unknown_output")]
    if want is not None and out.type != want:
        return [_issue(f"'{ref}' is a {out.type} output; expected a {want} output", loc, step=step,
                       expected=f"an output declared as '{want}'", code="output_type")]
    return []


def _check_input_type(declared: str | None, ref: StepOutputRef, by_name: dict[str, Any], loc: Loc,
                      step: str) -> list[Issue]:
    """An input that declares a type must read an output of that type (``generic`` matches anything)."""
    producer = by_name.get(ref.step)
    if declared in (None, "generic") or not isinstance(producer, TaskStep) or ref.output not in producer.outputs:
        return []
    actual = producer.outputs[ref.output].type
    if actual in (declared, "generic"):
        return []
    return [_issue(f"input is declared {declared} but '{ref}' is a {actual} output", loc, step=step,
                   expected=f"a {declared} output", fix=f"declare the input as {actual} or read another output",
                   code="output_type")]


def _check_text(text: str, loc: Loc, step: str, params: dict[str, Parameter], *,
                inputs: Iterable[str] = (), outputs: Iterable[str] = (),
                allowed: tuple[str, ...] = ("inputs", "outputs", "params"),
                tuning: Iterable[str] | None = None) -> list[Issue]:
    issues: list[Issue] = []
    names = {"inputs": set(inputs), "outputs": set(outputs), "params": set(params), "tuning": set(tuning or ())}
    if tuning is not None:
        allowed = (*allowed, "tuning")
    for ph in find_placeholders(text):
        if ph.namespace == "tuning" and tuning is None:
            issues.append(_issue(f"placeholder {ph.raw}: this step has no 'tuning' block", loc, step=step,
                                 fix="add tuning: {search_space: ...} to the step, or use {{params.NAME}}",
                                 code="bad_placeholder"))
        elif ph.namespace not in allowed:
            want = ", ".join("{{" + a + ".NAME}}" for a in allowed)
            close = _suggest(ph.namespace, allowed) if ph.namespace else None
            fix = ("did you mean {{" + f"{close}.{ph.name}" + "}}?") if close else f"write one of {want}"
            issues.append(_issue(f"placeholder {ph.raw} names nothing", loc, step=step, expected=want, fix=fix,
                                 code="bad_placeholder"))
        elif ph.name not in names[ph.namespace]:
            what = {"inputs": "input", "outputs": "output", "params": "parameter",
                    "tuning": "search-space entry"}[ph.namespace]
            issues.append(_issue(f"placeholder {ph.raw}: no {what} '{ph.name}'", loc, step=step,
                                 fix=_did_you_mean(ph.name, sorted(names[ph.namespace])), code="bad_placeholder"))
    return issues


def _check_task(s: TaskStep, base: Loc, params: dict[str, Parameter], by_name: dict[str, Any],
                known: set[str]) -> list[Issue]:
    issues: list[Issue] = []
    for iname, spec in s.inputs.items():
        loc: Loc = (*base, "inputs", iname)
        ref = spec.ref
        if isinstance(ref, StepOutputRef):
            if ref.step == s.name:
                issues.append(_issue("a step cannot read its own output", loc, step=s.name, code="cycle"))
            else:
                found = _check_output_ref(ref, loc, s.name, by_name, known)
                issues += found or _check_input_type(spec.type, ref, by_name, loc, s.name)
        elif isinstance(ref, ParamSourceRef):
            p = params.get(ref.param)
            if p is None:
                issues.append(_issue(f"unknown parameter '{ref.param}'", loc, step=s.name,
                                     fix=_did_you_mean(ref.param, params), code="unknown_parameter"))
            elif p.type != "string":
                issues.append(_issue(f"parameter '{ref.param}' is {p.type}; an input URI needs a string parameter",
                                     loc, step=s.name, code="parameter_type"))
        elif isinstance(ref, ExternalRef):
            bad = uri_scheme_error(ref.uri)
            if bad:
                issues.append(_issue(bad, loc, step=s.name, expected="s3://, gs://, azureml://, file:// or a path",
                                     code="bad_uri"))
            issues += _check_text(ref.uri, loc, s.name, params, allowed=("params",))
    texts: list[tuple[Loc, str]] = []
    if isinstance(s.command, str):
        texts.append(((*base, "command"), s.command))
    elif isinstance(s.command, list):
        texts += [((*base, "command", i), c) for i, c in enumerate(s.command)]
    texts += [((*base, "args", i), a) for i, a in enumerate(s.args)]
    texts += [((*base, "env", k), v) for k, v in s.env.items()]
    texts += [((*base, "params", k), v) for k, v in s.params.items() if isinstance(v, str)]
    tuned = list(s.tuning.search_space) if s.tuning else None
    for loc, text in texts:
        issues += _check_text(text, loc, s.name, params, inputs=s.inputs, outputs=s.outputs, tuning=tuned)
    if s.tuning is not None:
        issues += _check_tuning(s, base, texts)
    return issues


def _check_tuning(s: TaskStep, base: Loc, texts: list[tuple[Loc, str]]) -> list[Issue]:
    """The objective names a metrics output of this step; every searched name reaches the step."""
    assert s.tuning is not None
    issues: list[Issue] = []
    t = s.tuning
    tloc: Loc = (*base, "tuning")
    obj = t.objective
    out = s.outputs.get(obj.output) if obj is not None else None
    if obj is None:
        pass  # invalid, reported with the block
    elif out is None:
        metrics = [n for n, o in s.outputs.items() if o.type == "metrics"]
        issues.append(_issue(f"tuning objective '{obj.metric}': step '{s.name}' has no output '{obj.output}'",
                             (*tloc, "objective", "metric"), step=s.name, expected="OUTPUT.KEY of a metrics output",
                             fix=(f"did you mean '{metrics[0]}.{obj.key}'?" if metrics else
                                  f"declare outputs: {{{obj.output}: metrics}} and write '{obj.key}' into it"),
                             code="unknown_output"))
    elif out.type != "metrics":
        issues.append(_issue(f"tuning objective '{obj.metric}': '{obj.output}' is a {out.type} output", (
            *tloc, "objective", "metric"), step=s.name, expected="an output declared as 'metrics'",
            fix=f"declare a metrics output and write '{obj.key}' into it", code="output_type"))
    for name in t.search_space:
        nloc: Loc = (*tloc, "search_space", name)
        if s.python is not None:
            if name in s.params:
                issues.append(_issue(f"'{name}' is both a searched value and a fixed param", nloc, step=s.name,
                                     fix=f"remove '{name}' from params: the trial passes it to the function",
                                     code="tuning_conflict"))
            continue
        used = any(ph.namespace == "tuning" and ph.name == name for _, text in texts
                   for ph in find_placeholders(text))
        if not used:
            issues.append(_issue(f"search-space entry '{name}' never reaches the step", nloc, step=s.name,
                                 fix="put {{tuning." + name + "}} in the command, args or env, or remove it",
                                 code="tuning_unused"))
    return issues


def _check_condition(s: ConditionStep, base: Loc, params: dict[str, Parameter], by_name: dict[str, Any],
                     known: set[str], branch_owner: dict[str, str]) -> list[Issue]:
    issues: list[Issue] = []
    loc: Loc = (*base, "condition")
    for op in s.condition.metric_operands():
        issues += _check_output_ref(StepOutputRef(op.step, op.output), loc, s.name, by_name, known, want="metrics")
    for c in s.condition.comparisons():
        for side, other in ((c.left, c.right), (c.right, c.left)):
            if isinstance(side, ParamOperand):
                p = params.get(side.name)
                if p is None:
                    issues.append(_issue(f"unknown parameter '{side.name}'", loc, step=s.name,
                                         fix=_did_you_mean(side.name, params), code="unknown_parameter"))
                elif isinstance(other, LiteralOperand) and _kind(other.value) != _ptype_kind(p.type):
                    issues.append(_issue(f"compares {p.type} parameter '{side.name}' with {other}", loc, step=s.name,
                                         expected=f"a {p.type} value", code="condition_type"))
            if isinstance(side, MetricOperand) and isinstance(other, ParamOperand):
                p = params.get(other.name)
                if p is not None and p.type == "string" and c.op not in ("==", "!="):
                    issues.append(_issue(f"orders a metric against string parameter '{other.name}'", loc,
                                         step=s.name, code="condition_type"))
    for branch, names in (("then", s.then), ("else", s.else_)):
        for j, target in enumerate(names):
            tloc: Loc = (*base, branch, j)
            if target == s.name:
                issues.append(_issue("a condition cannot guard itself", tloc, step=s.name))
            elif target not in known:
                issues.append(_unknown_step(target, known, tloc, s.name))
            elif target in branch_owner:
                issues.append(_issue(f"step '{target}' is already guarded by '{branch_owner[target]}'", tloc,
                                     step=s.name, fix="a step belongs to one branch of one condition",
                                     code="double_branch"))
            else:
                branch_owner[target] = f"{s.name}.{branch}"
    return issues


def _kind(v: Any) -> str:
    return "bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else "string"


def _ptype_kind(t: str) -> str:
    return {"int": "number", "float": "number", "bool": "bool"}.get(t, "string")


def _check_register(s: RegisterModelStep, base: Loc, by_name: dict[str, Any], known: set[str]) -> list[Issue]:
    from cloudml.spec.refs import parse_source

    issues: list[Issue] = []
    rm = s.register_model
    for field, want in (("model", "model"), ("metrics", "metrics")):
        value = getattr(rm, field)
        if value is None:
            continue
        loc: Loc = (*base, "register_model", field)
        ref = parse_source(value)
        if not isinstance(ref, StepOutputRef):
            issues.append(_issue(f"'{value}' is not a step output", loc, step=s.name,
                                 expected=f"STEP.outputs.NAME of a {want} output", code="bad_reference"))
        else:
            issues += _check_output_ref(ref, loc, s.name, by_name, known, want=want)
    return issues


def _check_backend_options(data: Any) -> list[Issue]:
    """Validate every backend_options block with the named adapter's own options model."""
    from cloudml.registry import validate_backend_options

    issues: list[Issue] = []
    blocks: list[tuple[Loc, Any]] = [(("backend_options",), data.get("backend_options"))]
    raw_steps = data.get("steps")
    for i, st in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        if isinstance(st, dict):
            blocks.append((("steps", i, "backend_options"), st.get("backend_options")))
    for loc, block in blocks:
        if isinstance(block, dict):
            for adapter, opts in block.items():
                for sub, msg, fix in validate_backend_options(adapter, opts):
                    issues.append(_issue(msg, (*loc, adapter, *sub), step=_step_name(data, loc), fix=fix,
                                         code="backend_options"))
    return issues


def validate_data(data: Any, doc: Document | None = None) -> Pipeline | Deployment:
    """Validate plain data (from YAML, JSON or Python) into a Pipeline or Deployment.

    Example:
        >>> validate_data({"kind": "Deployment", "endpoint": "ep", "model": {"group": "g"}}).endpoint
        'ep'
    """
    source = doc.source if doc else "<data>"
    if not isinstance(data, dict):
        raise SpecError(_locate([_issue("a spec is a mapping with 'kind: Pipeline' or 'kind: Deployment'", (),
                                        code="not_a_mapping")], data, doc), source=source)
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        close = _suggest(str(kind), _KINDS) if isinstance(kind, str) else None
        issue = _issue("missing 'kind'" if kind is None else f"unknown kind {kind!r}", ("kind",),
                       expected="Pipeline or Deployment",
                       fix=f"did you mean '{close}'?" if close else "write 'kind: Pipeline' or 'kind: Deployment'",
                       code="kind")
        raise SpecError(_locate([issue], data, doc), source=source)
    model_cls = _KINDS[kind]
    issues: list[Issue] = []
    result: Pipeline | Deployment | None = None
    try:
        result = model_cls.model_validate(data)
    except ValidationError as err:
        issues += _pydantic_issues(err, data)
    if kind == "Pipeline":
        issues += _pipeline_semantics(data, result)  # type: ignore[arg-type]
    issues += _check_backend_options(data)
    if issues or result is None:
        raise SpecError(_locate(issues, data, doc), source=source)
    return result


def _pipeline_semantics(data: dict[str, Any], model: Pipeline | None) -> list[Issue]:
    if model is not None:
        steps: list[tuple[int, Any]] = list(enumerate(model.steps))
        sched = model.schedule.parameters if model.schedule else None
        return check_pipeline(model.parameters, steps, [s.name for s in model.steps], sched)
    params: dict[str, Parameter] = {}
    raw_params = data.get("parameters")
    if isinstance(raw_params, dict):
        for name, spec in raw_params.items():
            try:
                params[name] = _param_adapter.validate_python(spec)
            except ValidationError:
                params[name] = Parameter.model_construct(type="string")  # reported already; keep the name
    steps = []
    names: list[str] = []
    raw_steps = data.get("steps")
    for i, raw in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            names.append(raw["name"])
        salvaged = _salvage_step(raw)
        if salvaged is not None:
            steps.append((i, salvaged))
    return check_pipeline(params, steps, names)


def _salvage_step(raw: Any) -> Any:
    """Validate a step; when it fails, retry without the offending fields so its references still get checked."""
    try:
        return _step_adapter.validate_python(raw)
    except ValidationError as err:
        if not isinstance(raw, dict):
            return None
        bad = {loc[0] for e in err.errors() if (loc := _walk_loc(raw, tuple(e["loc"]), False))}
        trimmed = {k: v for k, v in raw.items() if k not in bad or k == "name"}
        if trimmed == raw:
            return None
        try:
            step = _step_adapter.validate_python(trimmed)
        except ValidationError:
            return None
        if "tuning" in bad and isinstance(step, TaskStep):
            step = step.model_copy(update={"tuning": _salvage_tuning(raw.get("tuning"))})
        return step


def _salvage_tuning(raw: Any) -> Any:
    """A stand-in for an invalid tuning block: its names and objective, so the step's placeholders still check."""
    from cloudml.spec.tuning import Objective, Tuning

    if not isinstance(raw, dict) or not isinstance(raw.get("search_space"), dict):
        return None
    try:
        objective: Any = Objective.model_validate(raw.get("objective"))
    except ValidationError:
        objective = None
    names: Any = dict.fromkeys(raw["search_space"])
    return Tuning.model_construct(search_space=names, objective=objective)


def _locate(issues: list[Issue], data: Any, doc: Document | None) -> list[Issue]:
    out: list[Issue] = []
    for i in issues:
        step = i.step or _step_name(data, i.loc)
        line, col = (None, None)
        if doc is not None:
            line, col = doc.position(i.loc, key=i.code == "unknown_field")
        out.append(replace(i, file=doc.source if doc else i.file, line=line, column=col, step=step))
    out.sort(key=lambda i: (i.line or 0, i.column or 0))
    return out


def validate_document(doc: Document) -> Pipeline | Deployment:
    """Validate a parsed :class:`~cloudml.loader.Document`; errors carry file:line:column.

    Example:
        >>> from cloudml.loader import parse_yaml
        >>> validate_document(parse_yaml("kind: Deployment\\nendpoint: ep\\nmodel: {group: g}\\n")).endpoint
        'ep'
    """
    return validate_data(doc.data, doc)


def validate_model(model: Pipeline | Deployment) -> Pipeline | Deployment:
    """Run the semantic checks on a model built in Python (the builder calls this).

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.add_step("a", command="echo")
        >>> p = b.build()
        >>> validate_model(p) is p
        True
    """
    issues: list[Issue] = []
    data = model.model_dump(by_alias=True, exclude_defaults=True)
    if isinstance(model, Pipeline):
        issues += _pipeline_semantics(data, model)
    issues += _check_backend_options(data)
    if issues:
        raise SpecError(_locate(issues, data, None), source=f"{model.kind} built in Python")
    return model

