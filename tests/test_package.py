"""`make package` builds a zip that Lambda can import: built here for this machine's Python and CPU, unpacked,
and imported in a clean interpreter that sees nothing but the zip's contents and the standard library.

Slow (pip resolves the runtime dependencies from PyPI, then reuses pip's cache on later runs) and needs
the package index: the only test here that leaves the machine, through pip in a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "package.py"
HOST_RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
HOST_ARCH = {"aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "x86_64")
# Top-level names that must never ship: our tests and the dev extra's tools.
DEV_ONLY = {
    "tests",
    "pytest",
    "_pytest",
    "pytest_socket",
    "moto",
    "ruff",
    "mypy",
    "mypy_boto3_sesv2",
    "boto3_stubs",
    "aiosmtpd",
    "hcl2",
    "psutil",
    "benchmarks",
    "scripts",
    "infra",
}


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("package")
    output = work / "dist" / "lambda.zip"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--runtime",
            HOST_RUNTIME,
            "--arch",
            HOST_ARCH,
            "--output",
            str(output),
            "--build-dir",
            str(work / "build"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    unpacked = work / "unpacked"
    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
        archive.extractall(unpacked)
    manifest = json.loads(Path(f"{output}.json").read_text())
    return {"zip": output, "names": names, "unpacked": unpacked, "stdout": result.stdout, "manifest": manifest}


@pytest.mark.slow
def test_package_reports_its_size_and_target(built: dict[str, Any]) -> None:
    assert "MiB" in built["stdout"] and f"{HOST_RUNTIME} {HOST_ARCH}" in built["stdout"]
    manifest = built["manifest"]
    assert (manifest["runtime"], manifest["architecture"]) == (HOST_RUNTIME, HOST_ARCH)
    assert manifest["size"] == built["zip"].stat().st_size


@pytest.mark.slow
def test_package_holds_the_code_and_templates_and_no_tests_dev_tools_or_bytecode(built: dict[str, Any]) -> None:
    names: list[str] = built["names"]
    assert "sender/handler.py" in names
    assert "templates/regatta-invite/subject.j2" in names
    assert "templates/regatta-invite/text.j2" in names
    top = {name.split("/", 1)[0] for name in names}
    assert not top & DEV_ONLY, top & DEV_ONLY
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert "bin" not in top


@pytest.mark.slow
def test_handler_imports_from_the_unpacked_zip_in_a_clean_interpreter(built: dict[str, Any]) -> None:
    unpacked = str(built["unpacked"])
    probe = f"""
import importlib.util, json, pathlib, sys
sys.path.insert(0, {unpacked!r})
import sender, sender.handler
import jinja2, pydantic_core, aws_lambda_powertools
assert callable(sender.handler.lambda_handler)
templates = pathlib.Path(sender.__file__).parent.parent / "templates"
print(json.dumps({{
    "modules": [m.__file__ for m in (sender, sender.handler, jinja2, pydantic_core, aws_lambda_powertools)],
    "templates": sorted(p.name for p in templates.iterdir()),
    "dev_tools": [n for n in ("pytest", "moto", "ruff", "mypy") if importlib.util.find_spec(n)],
}}))
"""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": unpacked,
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_REGION": "us-west-2",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    # -I: no PYTHON* variables, no user site, no script folder on the path; -S: no site-packages at all,
    # so nothing of the dev venv can stand in for something the zip lacks.
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        cwd=unpacked,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(path.startswith(unpacked) for path in seen["modules"]), seen["modules"]
    assert "regatta-invite" in seen["templates"]
    assert seen["dev_tools"] == []


# --- fast checks of the script's pieces --------------------------------------------------------------
def test_zip_is_deterministic_whatever_the_files_timestamps(tmp_path: Path) -> None:
    script = load_script()
    staging = tmp_path / "staging"
    (staging / "pkg").mkdir(parents=True)
    (staging / "pkg" / "a.py").write_text("A = 1\n")
    (staging / "pkg" / "b.txt").write_text("b\n")
    files = script.shipped_files(staging)
    script.write_zip(staging, files, tmp_path / "one.zip")
    os.utime(staging / "pkg" / "a.py", (1_000_000_000, 1_000_000_000))
    script.write_zip(staging, files, tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()


def test_shipped_files_leave_out_bytecode_caches_and_console_scripts(tmp_path: Path) -> None:
    script = load_script()
    for name in ("pkg/mod.py", "pkg/__pycache__/mod.cpython-312.pyc", "pkg/old.pyc", "bin/jsonschema", "pkg/bin/tool"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert [p.as_posix() for p in script.shipped_files(tmp_path)] == ["pkg/bin/tool", "pkg/mod.py"]


def test_runtime_requirements_come_from_pyproject_and_never_include_the_dev_extra() -> None:
    script = load_script()
    with_sdk = script.runtime_requirements(ROOT, with_sdk=True)
    without = script.runtime_requirements(ROOT, with_sdk=False)
    names = {script.requirement_name(r) for r in with_sdk}
    assert {"jinja2", "aws-lambda-powertools", "boto3"} <= names
    assert not names & {"pytest", "moto", "ruff", "mypy", "python-hcl2"}
    assert "boto3" not in {script.requirement_name(r) for r in without}


def test_runtime_and_architecture_are_validated() -> None:
    script = load_script()
    assert script.python_version("python3.13") == "3.13"
    assert script.platform_arch("arm64") == "aarch64"
    with pytest.raises(SystemExit, match="runtime must look like"):
        script.python_version("nodejs20.x")
    with pytest.raises(SystemExit, match="arch must be"):
        script.platform_arch("sparc")
