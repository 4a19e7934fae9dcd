"""Every ``oracle`` command answers ``--help`` through the installed entry point, and the cheap ones run for real.

The command list is read from the typer app itself, so a command added later is covered without editing this
file; a command whose import or signature is broken (``oracle demo`` once imported a name that did not exist)
fails here instead of in a newcomer's shell.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from oracle.cli import app
from oracle.profile.compiler import commitment_of_file

MODELS = Path(__file__).resolve().parents[1] / "oracle" / "models"


def _command_paths() -> list[tuple[str, ...]]:
    """All leaf command paths of the CLI, e.g. ("node", "run")."""
    root = typer.main.get_command(app)
    paths: list[tuple[str, ...]] = []

    def walk(cmd: object, prefix: tuple[str, ...]) -> None:
        subcommands = getattr(cmd, "commands", None)  # a group (typer vendors its own click)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, (*prefix, name))
        else:
            paths.append(prefix)

    walk(root, ())
    return sorted(paths)


def _oracle() -> str:
    exe = Path(sys.executable).with_name("oracle")
    found = str(exe) if exe.exists() else shutil.which("oracle")
    assert found, "the `oracle` entry point is not installed (pip install -e .)"
    return found


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_oracle(), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_the_cli_has_the_documented_commands() -> None:
    paths = {" ".join(p) for p in _command_paths()}
    for expected in ("demo", "node run", "node stake", "challenger run", "chain deploy", "chain register",
                     "model commitment", "model compile", "model convert", "chain devnet", "chain fund",
                     "account new", "account address"):
        assert expected in paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p))
def test_every_command_answers_help(path: tuple[str, ...]) -> None:
    proc = _run(*path, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr


def test_model_commitment_matches_the_shipped_manifest() -> None:
    manifest = json.loads((MODELS / "manifest.json").read_text())["models"]["digits"]
    proc = _run("model", "commitment", str(MODELS / "digits.onnx"),
                "--input-width", str(manifest["input_width"]), "--output-width", str(manifest["output_width"]))
    assert proc.returncode == 0, proc.stderr
    assert f"commitment {manifest['program_commitment']}" in proc.stdout


def test_model_compile_writes_the_shipped_program(tmp_path: Path) -> None:
    manifest = json.loads((MODELS / "manifest.json").read_text())["models"]["digits"]
    out = tmp_path / "digits.program"
    proc = _run("model", "compile", str(MODELS / "digits.onnx"), "-o", str(out),
                "--input-width", str(manifest["input_width"]), "--output-width", str(manifest["output_width"]))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == (MODELS / "digits.program").read_bytes()
    program, _ = commitment_of_file(MODELS / "digits.onnx", manifest["input_width"], manifest["output_width"])
    assert out.read_bytes() == program


def test_model_commitment_of_a_non_onnx_file_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not an onnx file" * 10)
    proc = _run("model", "commitment", str(junk))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error:")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_challenger_status_without_a_database_says_what_to_do(tmp_path: Path) -> None:
    proc = _run("challenger", "status", "--db", str(tmp_path / "challenger.sqlite3"))
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'challenger.sqlite3'} does not exist; run `oracle challenger run` first"
    ]
    assert not (tmp_path / "challenger.sqlite3").exists()  # a status query creates nothing
