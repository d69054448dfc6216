from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

from apiclub import settings as settings_module
from apiclub import settings_doc
from apiclub.cli import build_parser, flag_values
from apiclub.setting_spec import SettingSpec, text
from apiclub.setting_table import SETTINGS
from apiclub.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def field_docstrings(source: str) -> dict[str, str]:
    """Each annotated field of the first class in `source` with the docstring under it."""
    body = next(node for node in ast.parse(source).body if isinstance(node, ast.ClassDef)).body
    found = {}
    for field, after in zip(body, [*body[1:], None], strict=True):
        if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name):
            doc = after.value.value if isinstance(after, ast.Expr) else None
            found[field.target.id] = doc if isinstance(doc, str) else ""
    return found


def uncovered(specs: tuple[SettingSpec, ...], docs: dict[str, str]) -> list[str]:
    """What does not fit: a field no variable fills, a variable filling no field, a variable
    its field's docstring does not name."""
    problems = [f"{name}: no variable" for name in docs if name not in {s.field for s in specs}]
    for spec in specs:
        if spec.field not in docs:
            problems.append(f"{spec.env}: fills no Settings field {spec.field!r}")
        elif spec.env not in docs[spec.field]:
            problems.append(f"{spec.field}: docstring does not name {spec.env}")
    return problems


def test_the_readme_table_is_the_generated_one() -> None:
    assert settings_doc.main(["--check", str(README)]) == 0


def test_a_tampered_readme_table_is_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    copy = tmp_path / "README.md"
    copy.write_text(README.read_text().replace("| `8443` |", "| `8444` |", 1))
    assert settings_doc.main(["--check", str(copy)]) == 1
    assert "stale: run make settings-table" in capsys.readouterr().err
    assert settings_doc.main([str(copy)]) == 0  # rewrites it
    assert copy.read_text() == README.read_text()


def test_a_readme_without_markers_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    copy = tmp_path / "README.md"
    copy.write_text(README.read_text().replace(settings_doc.END, ""))
    assert settings_doc.main(["--check", str(copy)]) == 1
    assert "no settings table" in capsys.readouterr().err


def test_every_field_has_a_variable_its_docstring_names() -> None:
    docs = field_docstrings(inspect.getsource(settings_module))
    assert set(docs) == {field.name for field in dataclasses.fields(Settings)}
    assert uncovered(SETTINGS, docs) == []


def test_a_field_without_variable_or_a_docstring_without_it_is_found() -> None:
    docs = {"host": "Address (APICLUB_HOST).", "port": "The port.", "limit": "No variable."}
    specs = (
        SettingSpec("APICLUB_HOST", text, "h", "d"),
        SettingSpec("APICLUB_PORT", text, "h", "d"),
        SettingSpec("APICLUB_GONE", text, "h", "d"),
    )
    assert uncovered(specs, docs) == [
        "limit: no variable",
        "port: docstring does not name APICLUB_PORT",
        "APICLUB_GONE: fills no Settings field 'gone'",
    ]


def test_variables_and_flags_are_unique() -> None:
    envs = [spec.env for spec in SETTINGS]
    flags = [spec.option for spec in SETTINGS if spec.option is not None]
    assert len(set(envs)) == len(envs)
    assert len(set(flags)) == len(flags)


@pytest.mark.parametrize("spec", [s for s in SETTINGS if s.option], ids=lambda s: s.option)
def test_each_flag_hands_its_value_to_its_variable(spec: SettingSpec) -> None:
    argv = ["serve", spec.option] if spec.switch else ["serve", f"{spec.option}=x"]
    assert flag_values(build_parser().parse_args(argv)) == {spec.env: "1" if spec.switch else "x"}


def test_an_unknown_flag_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve", "--https-prt", "1"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --https-prt" in capsys.readouterr().err
