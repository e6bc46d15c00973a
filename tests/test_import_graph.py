"""Structure (issue 14): no import cycles, one registry per kind, a training loop that names no recipe."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from facesr.errors import ConfigError, ModelError

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "facesr"


@pytest.mark.parametrize("level", [[], ["--packages"]], ids=["modules", "sub-packages"])
def test_no_import_cycles(level: list[str]) -> None:
    p = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "import_cycles.py"), "--edges", *level],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert " 0 cycle(s)" in p.stdout.splitlines()[0]


def _facesr_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("facesr"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("facesr"))
    return names


def test_networks_register_through_the_leaf_registry() -> None:
    assert _facesr_imports(SRC / "nets" / "registry.py") <= {"facesr.errors"}
    for path in sorted((SRC / "nets").glob("*.py")):
        assert "facesr.zoo" not in _facesr_imports(path), path.name


def test_a_duplicate_architecture_name_is_an_error() -> None:
    from facesr.nets.registry import register_arch

    def one() -> None: ...

    def other() -> None: ...

    register_arch("_dup_test")(one)
    register_arch("_dup_test")(one)  # the same builder again: allowed (a re-imported module)
    with pytest.raises(ModelError, match="already registered"):
        register_arch("_dup_test")(other)


def test_a_duplicate_recipe_name_is_an_error_and_an_unknown_one_a_one_line_error() -> None:
    from facesr.train.recipes import recipe_class, recipe_names, register_recipe

    assert {
        "jdsr",
        "sr_only",
        "two_stage_denoiser",
        "two_stage_sr",
        "cr_a",
        "cr_b",
        "cr_c",
        "cycle",
    } <= set(recipe_names())
    with pytest.raises(ValueError, match="registered twice"):
        register_recipe("jdsr")(type("Other", (), {}))
    with pytest.raises(ConfigError, match="unknown recipe 'nope'") as exc:
        recipe_class("nope")
    assert "\n" not in str(exc.value)


def test_the_loop_names_no_recipe_and_touches_no_private_field() -> None:
    from facesr.train.recipes import recipe_names

    names = set(recipe_names())
    tree = ast.parse((SRC / "train" / "loop.py").read_text(encoding="utf-8"))
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not names & strings
    assert not {
        m for m in _facesr_imports(SRC / "train" / "loop.py") if m.startswith("facesr.train.recipes.")
    }
    private = {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute)
        and n.attr.startswith("_")
        and not n.attr.startswith("__")
        and not (isinstance(n.value, ast.Name) and n.value.id in ("self", "torch"))
    }
    assert not private, private


def test_evaluation_imports_no_training_code() -> None:
    for path in sorted((SRC / "eval").glob("*.py")):
        assert not {m for m in _facesr_imports(path) if m.startswith("facesr.train")}, path.name
