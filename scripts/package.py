"""Build the Lambda deployment zip: the `sender` package, the top-level `templates/`, and the runtime
dependencies from pyproject.toml installed for the target runtime and architecture.

    python scripts/package.py --runtime python3.12 --arch arm64 --output dist/lambda.zip

Dependencies come from PyPI as binary wheels for the target (`pip install --platform
manylinux2014_<arch> --only-binary=:all: --python-version <X.Y> --implementation cp --target ...`), so the
zip built on an x86_64 laptop runs on an arm64 function. boto3/botocore are packaged too by default
(`--no-boto3` leaves them out): the runtime's own copy is whatever version AWS ships that month, and the
code relies on a recent botocore (SES v2 suppression calls, `AWS_ENDPOINT_URL_<SERVICE>` variables); pinning
our tested range costs about 15 MB of zip.

The zip is deterministic: entries sorted, every timestamp 1980-01-01, fixed permissions, so the same
inputs give the same bytes and Terraform's source_code_hash does not change between identical builds.
Beside it, `<output>.json` records the runtime and architecture (Terraform refuses a mismatch), the
zip's sha256 and size, and the installed distributions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
ARCH_PLATFORM = {"arm64": "aarch64", "aarch64": "aarch64", "x86_64": "x86_64", "amd64": "x86_64"}
ARCH_LAMBDA = {"aarch64": "arm64", "x86_64": "x86_64"}
SDK = frozenset({"boto3", "botocore", "s3transfer"})
# Never shipped: bytecode (the runtime compiles what it imports), caches, and pip's console scripts (the
# top-level bin/ of the --target folder).
EXCLUDED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
EXCLUDED_TOP = frozenset({"bin"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
LAMBDA_ZIP_LIMIT = 50 * 1024 * 1024  # direct upload limit of a zipped package


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", default="python3.12", help="Lambda runtime, e.g. python3.12 (default)")
    parser.add_argument("--arch", default="arm64", help="arm64 (default) or x86_64")
    parser.add_argument("--output", type=Path, default=ROOT / "dist" / "lambda.zip")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build" / "lambda", help="staging folder")
    parser.add_argument("--project", type=Path, default=ROOT, help="folder with pyproject.toml, sender/, templates/")
    parser.add_argument("--cache-dir", type=Path, default=None, help="pip cache (default: pip's own)")
    parser.add_argument("--no-boto3", action="store_true", help="leave boto3/botocore to the Lambda runtime")
    return parser.parse_args(argv)


def python_version(runtime: str) -> str:
    match = re.fullmatch(r"python(3\.\d+)", runtime)
    if not match:
        raise SystemExit(f"package: runtime must look like python3.12, not {runtime!r}")
    return match.group(1)


def platform_arch(arch: str) -> str:
    try:
        return ARCH_PLATFORM[arch]
    except KeyError:
        raise SystemExit(f"package: arch must be arm64 or x86_64, not {arch!r}") from None


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise SystemExit(f"package: cannot read requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def runtime_requirements(project: Path, *, with_sdk: bool) -> list[str]:
    """[project] dependencies of pyproject.toml (never the dev extra), optionally without the SDK."""
    with (project / "pyproject.toml").open("rb") as f:
        requirements: list[str] = tomllib.load(f)["project"]["dependencies"]
    return [r for r in requirements if with_sdk or requirement_name(r) not in SDK]


def pip_install(requirements: list[str], target: Path, *, version: str, arch: str, cache: Path | None) -> None:
    command = [
        sys.executable, "-m", "pip", "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--platform", f"manylinux2014_{arch}",
        "--only-binary=:all:",
        "--python-version", version,
        "--implementation", "cp",
        "--target", str(target),
    ]  # fmt: skip
    if cache is not None:
        command += ["--cache-dir", str(cache)]
    subprocess.run([*command, *requirements], check=True)


def copy_tree(source: Path, destination: Path) -> None:
    shutil.copytree(
        source,
        destination,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".DS_Store"),
        dirs_exist_ok=False,
    )


def shipped_files(staging: Path) -> list[Path]:
    files = []
    for path in staging.rglob("*"):
        relative = path.relative_to(staging)
        if relative.parts[0] in EXCLUDED_TOP or path.suffix in EXCLUDED_SUFFIXES:
            continue
        if any(part in EXCLUDED_DIRS for part in relative.parts):
            continue
        if path.is_file():
            files.append(relative)
    return sorted(files, key=lambda p: p.as_posix())


def write_zip(staging: Path, files: list[Path], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for relative in files:
            info = zipfile.ZipInfo(relative.as_posix(), date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so external_attr carries the mode
            info.external_attr = 0o100644 << 16
            archive.writestr(info, (staging / relative).read_bytes(), compresslevel=9)
    partial.replace(output)


def installed_distributions(staging: Path) -> list[str]:
    names = []
    for info in sorted(staging.glob("*.dist-info")):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        names.append(f"{name}=={version}")
    return names


def build(args: argparse.Namespace) -> dict[str, object]:
    version = python_version(args.runtime)
    arch = platform_arch(args.arch)
    project = args.project.resolve()
    staging = args.build_dir.resolve()
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)

    requirements = runtime_requirements(project, with_sdk=not args.no_boto3)
    pip_install(requirements, staging, version=version, arch=arch, cache=args.cache_dir)
    for name in ("sender", "templates"):
        if (staging / name).exists():
            raise SystemExit(f"package: a dependency installed a top-level {name!r}, which would shadow ours")
        copy_tree(project / name, staging / name)

    files = shipped_files(staging)
    output = args.output.resolve()
    write_zip(staging, files, output)
    data = output.read_bytes()
    manifest: dict[str, object] = {
        "runtime": args.runtime,
        "architecture": ARCH_LAMBDA[arch],
        "python_version": version,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "files": len(files),
        "boto3_included": not args.no_boto3,
        "distributions": installed_distributions(staging),
    }
    Path(f"{output}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    manifest = build(args)
    size = int(str(manifest["size"]))
    print(
        f"{args.output}: {size / 1_048_576:.1f} MiB ({size:,} bytes), {manifest['files']} files, "
        f"{manifest['runtime']} {manifest['architecture']}"
    )
    if size > LAMBDA_ZIP_LIMIT:
        print("package: over Lambda's 50 MB direct-upload limit: deploy it through S3", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
