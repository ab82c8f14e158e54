"""Parameter inputs on Vertex (``inputs: {raw: "{{params.uri}}"}``): a run's ``gs://`` value as a ``/gcs/`` path.

KFP has no string functions, so the compiler cannot turn ``gs://bucket/x`` into the Cloud Storage FUSE
path ``/gcs/bucket/x`` in the IR. Instead the parameter reaches the task like any other
(``{{$.inputs.parameters['uri']}}``), the command holds a stand-in (:func:`input_token`), and
:data:`GCS_MAPPER`, run first inside the container, replaces the stand-in with the value's FUSE path.
Values are checked three times: a default at compile time (:func:`refuse_non_gs_defaults`), run and
schedule values before any request (:func:`check_input_uris`), and the value itself in the container.

Example:
    >>> input_token("raw")
    '__cloudml_input_raw__'
"""

from __future__ import annotations

from typing import Any

from cloudml.errors import UnsupportedFeatureError
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.refs import ParamSourceRef
from cloudml.spec.steps import TaskStep

__all__ = ["GCS_MAPPER", "check_input_uris", "input_token", "param_inputs", "refuse_non_gs_defaults"]

# Maps parameter inputs to their Cloud Storage FUSE paths, then runs the command:
# ``python3 -c GCS_MAPPER <n> (<parameter> <token> <value>)*n <command...>``. Each ``token`` in the command
# is replaced by ``/gcs/<bucket>/<path>`` of the ``value`` (a ``gs://`` URI the run's parameter holds);
# any other value stops the step (exit 2) with a message naming the parameter.
GCS_MAPPER = (
    "import os,sys\n"
    "a=sys.argv[1:]\nn=int(a[0])\nm=a[1:1+3*n]\nc=a[1+3*n:]\n"
    "for j in range(0,len(m),3):\n"
    " q,t,u=m[j:j+3]\n"
    " if not u.startswith('gs://') or len(u)<6:\n"
    "  print('cloudml: parameter %s must hold a gs:// URI (Vertex reads Cloud Storage at /gcs/), got %r' % (q,u),"
    "file=sys.stderr)\n  sys.exit(2)\n"
    " c=[x.replace(t,'/gcs/'+u[5:]) for x in c]\n"
    "os.execvp(c[0],c)\n"
)


def input_token(name: str) -> str:
    """The stand-in GCS_MAPPER replaces with the FUSE path of a parameter input, in the command.

    Example:
        >>> input_token("dir")
        '__cloudml_input_dir__'
    """
    return f"__cloudml_input_{name}__"


def param_inputs(s: TaskStep) -> dict[str, str]:
    """The step's inputs that are a whole parameter: input name -> parameter name.

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.param("uri", str, "gs://b/x")
        >>> _ = b.add_step("a", command="cat {{inputs.raw}}", image="alpine", inputs={"raw": "{{params.uri}}"})
        >>> param_inputs(b.build().steps[0])
        {'raw': 'uri'}
    """
    return {n: spec.ref.param for n, spec in s.inputs.items() if isinstance(spec.ref, ParamSourceRef)}


def _gs_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value.startswith("gs://") or len(value) <= len("gs://"):
        return f"holds {value!r}; Vertex jobs read gs:// URIs (mounted at /gcs/)"
    return None


def check_input_uris(p: Pipeline, values: dict[str, Any]) -> None:
    """Refuse run (or schedule) values of parameters used as inputs that are not ``gs://`` URIs.

    Raises SpecError naming each parameter, before any request.

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.param("uri", str, "gs://b/x")
        >>> _ = b.add_step("a", command="cat {{inputs.raw}}", image="alpine", inputs={"raw": "{{params.uri}}"})
        >>> check_input_uris(b.build(), {"uri": "s3://b/x"})
        Traceback (most recent call last):
        ...
        cloudml.errors.SpecError: 1 problem in parameters of pipeline 'p':
        <spec>: parameters.uri: parameter 'uri' (input 'raw' of step 'a') holds 's3://b/x'; Vertex jobs read gs:// URIs (mounted at /gcs/)
            expected: gs://bucket/path
    """
    from cloudml.errors import Issue, SpecError

    issues: list[Issue] = []
    seen: set[str] = set()
    for s in p.task_steps():
        for name, param in param_inputs(p.effective(s)).items():
            problem = _gs_problem(values.get(param))
            if problem and param not in seen:
                seen.add(param)
                issues.append(Issue(f"parameter '{param}' (input '{name}' of step '{s.name}') {problem}",
                                    path=f"parameters.{param}", expected="gs://bucket/path", code="bad_uri"))
    if issues:
        raise SpecError(issues, source=f"parameters of pipeline '{p.name}'")


def refuse_non_gs_defaults(p: Pipeline) -> None:
    """A parameter read as an input must default to a gs:// URI (or have no default).

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.param("uri", str, "s3://b/x")
        >>> _ = b.add_step("a", command="cat {{inputs.raw}}", image="alpine", inputs={"raw": "{{params.uri}}"})
        >>> refuse_non_gs_defaults(b.build())
        Traceback (most recent call last):
        ...
        cloudml.errors.UnsupportedFeatureError: vertex cannot express 'input.parameter' on step 'a': input 'raw' reads parameter 'uri', whose default holds 's3://b/x'; Vertex jobs read gs:// URIs (mounted at /gcs/)
    """
    for s in p.task_steps():
        for name, param in param_inputs(p.effective(s)).items():
            default = p.parameters[param].default
            problem = _gs_problem(default) if default is not None else None
            if problem:
                raise UnsupportedFeatureError("vertex", s.name, "input.parameter",
                                              f"input '{name}' reads parameter '{param}', whose default {problem}")
