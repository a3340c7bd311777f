"""Foundation contracts: CLI wiring, atomic writes, pins that agree across pyproject/constraints/environment.yml."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from oa_kit.io.atomic import atomic_dir, atomic_path, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]


def test_python_m_oa_kit_prints_version():
    out = subprocess.run([sys.executable, "-m", "oa_kit", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("oa-kit ")


def test_atomic_path_leaves_old_file_on_error(tmp_path):
    target = tmp_path / "a.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_dir_replaces_whole_or_nothing(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target, overwrite=True) as tmp:
            (tmp / "y").write_text("2")
            raise RuntimeError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["x"]
    with pytest.raises(FileExistsError):
        with atomic_dir(target) as tmp:
            pass


def _pins(text: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)", text, re.M)}


def test_environment_yml_pins_agree_with_constraints():
    # environment.yml is generated from constraints.txt (scripts/make_environment.py, `make environment.yml`):
    # the same pins both ways, torch from the CPU wheel index, the project itself, nothing else.
    import yaml

    constraints = _pins((ROOT / "constraints.txt").read_text())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    deps = env["dependencies"]
    assert deps[:2] == ["python=3.11", "pip"], deps[:2]
    pip_lines = [d["pip"] for d in deps if isinstance(d, dict)]
    assert len(pip_lines) == 1 and len(deps) == 3, deps
    pip_lines = pip_lines[0]
    index = "--extra-index-url https://download.pytorch.org/whl/cpu"
    assert pip_lines[0] == index, f"first pip line must be {index!r}, got {pip_lines[0]!r}"
    assert pip_lines[-1] == "-e ."
    env_pins = _pins("\n".join(pip_lines[1:-1]))
    assert len(env_pins) == len(pip_lines) - 2, "environment.yml has pip lines that are not exact pins"
    missing = {n: v for n, v in constraints.items() if n not in env_pins}
    extra = {n: v for n, v in env_pins.items() if n not in constraints}
    differ = {n: (env_pins[n], v) for n, v in constraints.items() if n in env_pins and env_pins[n] != v}
    hint = "; run `make environment.yml`"
    assert not missing, f"constraints.txt pins missing from environment.yml: {missing}{hint}"
    assert not extra, f"environment.yml pins not in constraints.txt: {extra}{hint}"
    assert not differ, f"environment.yml vs constraints.txt versions: {differ}{hint}"
    assert constraints["torch"] == "2.13.0"
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH_INDEX ?= https://download.pytorch.org/whl/cpu\n" in makefile
    check = [sys.executable, str(ROOT / "scripts" / "make_environment.py"), "--check"]
    out = subprocess.run(check, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_constraints_are_cpu_only():
    # torch's CUDA build pulls nvidia-* (and triton) wheels; none may be pinned, so pip cannot be steered to it.
    names = _pins((ROOT / "constraints.txt").read_text())
    cuda = sorted(n for n in names if n.startswith(("nvidia-", "triton", "cupy", "pynvml", "nvidia_")))
    assert not cuda, cuda


def test_pyproject_lower_bounds_are_satisfied_by_constraints():
    import tomllib

    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    constraints = _pins((ROOT / "constraints.txt").read_text())
    for dep in deps:
        req = Requirement(dep)
        pinned = constraints.get(req.name.lower())
        assert pinned is not None, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pinned), f"{req.name}=={pinned} violates {req.specifier}"


def test_no_torchvision_anywhere():
    assert "torchvision" not in (ROOT / "constraints.txt").read_text()
    for path in (ROOT / "oa_kit").rglob("*.py"):
        assert "torchvision" not in path.read_text(), path


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "y").write_text("1")
    finally:
        os.umask(mask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_verified_sidecar_names_the_file_on_missing_or_tampered_weights(tmp_path):
    import json

    from oa_kit.errors import OAKitError
    from oa_kit.io.artifacts import sha256_file, verified_sidecar

    weights = tmp_path / "w.safetensors"
    with pytest.raises(OAKitError, match="w.safetensors: demo weights file missing"):
        verified_sidecar(weights, "demo weights")
    weights.write_bytes(b"abc")
    with pytest.raises(OAKitError, match="w.json: demo weights sidecar missing"):
        verified_sidecar(weights, "demo weights")
    (tmp_path / "w.json").write_text(json.dumps({"sha256": sha256_file(weights), "x": 1}))
    assert verified_sidecar(weights, "demo weights")["x"] == 1
    weights.write_bytes(b"abd")
    with pytest.raises(OAKitError, match="does not match"):
        verified_sidecar(weights, "demo weights")


def test_an_unexpected_error_is_one_line_unless_debug(monkeypatch, capsys):
    """The CLI's last resort: a bug prints one line and exits 1; --debug shows the traceback."""
    import oa_kit.cli.synth
    from oa_kit.cli import main

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(oa_kit.cli.synth, "handle", broken)
    assert main(["synth", "--out", "unused"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "oa-kit synth: unexpected error ZeroDivisionError: division by zero "
        "(a bug in oa_kit: rerun with --debug and report the traceback)"
    ]
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "synth", "--out", "unused"])
