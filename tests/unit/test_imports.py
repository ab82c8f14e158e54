"""`import cloudml` and compiling for any target load no cloud SDK (checked in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

FORBIDDEN = ("boto3", "botocore", "sagemaker", "google.cloud", "azure", "kfp")


def _modules_after(code: str) -> list[str]:
    """Modules the code loads, beyond what the interpreter had at startup (namespace-package ``.pth``
    files such as google-cloud-aiplatform's put empty ``google`` / ``google.cloud`` stubs there)."""
    script = ("import sys as _s\n_before = set(_s.modules)\n" + textwrap.dedent(code)
              + "\nimport sys, json\nprint(json.dumps(sorted(set(sys.modules) - _before)))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def _sdk(mods: list[str]) -> list[str]:
    return [m for m in mods if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


def test_import_cloudml_loads_no_cloud_sdk() -> None:
    mods = _modules_after("import cloudml")
    assert _sdk(mods) == []
    assert "pydantic" not in mods, "import cloudml stays cheap: pydantic loads on first use"


def test_using_the_core_loads_no_cloud_sdk() -> None:
    mods = _modules_after(
        """
        import cloudml
        from cloudml.registry import adapter_class, adapter_names, backends_info
        b = cloudml.PipelineBuilder("p"); _ = b.add_step("a", command="echo {{params.x}}")
        _ = b.param("x", "int", default=1)
        p = b.build()
        cloudml.compile(p, "local")
        for name in adapter_names():
            adapter_class(name)
        backends_info()
        cloudml.load_config()
        """
    )
    assert _sdk(mods) == []


def test_the_runtime_entry_and_the_monitoring_libraries_load_no_cloud_sdk() -> None:
    """cloudml.runtime imports boto3 only inside the function that resolves SageMaker secrets in a job."""
    mods = _modules_after("import cloudml.runtime, cloudml.drift, cloudml.abtest, cloudml.compare, cloudml.tuning")
    assert _sdk(mods) == []


def test_cloud_compilers_load_no_sdk() -> None:
    mods = _modules_after(
        """
        import cloudml
        for target in ("sagemaker", "vertex", "azureml"):
            cls = cloudml.registry.adapter_class(target)
            try:
                cloudml.compile(cloudml.loads("kind: Pipeline\\nname: p\\nsteps: [{name: a, command: x, image: i}]\\n"), target)
            except cloudml.CloudMLError:
                pass
        """
    )
    assert _sdk(mods) == []


def test_no_top_level_adapters_module_installed() -> None:
    code = "import importlib.util; print(importlib.util.find_spec('adapters') is None)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "True"
