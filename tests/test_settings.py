"""Settings are read from the environment one way: every variable the README names is read into
its field, each field of a role's settings has its variable, and a value of the wrong type is
an error naming the variable, never silently the default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from lienthong.environment import ENVIRONMENT, SettingsError, data_home, kek_dir, read
from plumbing.settings import StreamSettings

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "deploy").rglob("*.md"))]
VARIABLE = re.compile(r"LIENTHONG_[A-Z0-9_]+")

READ: dict[str, tuple[type[msgspec.Struct], dict[str, str]]] = {
    name: (cls, variables) for cls, variables in ENVIRONMENT for name in variables
}


FOLDERS = {"LIENTHONG_HOME", "LIENTHONG_KEK_DIR"}
"""Read as folders (`data_home`, `kek_dir`), each tested below."""


def documented() -> set[str]:
    return {m.group() for doc in DOCUMENTS for m in VARIABLE.finditer(doc.read_text())}


def sample(type_: Any) -> tuple[str, Any]:
    """A value of the type, as a variable holds it and as the field should then hold it."""
    if type_ is int:
        return "7", 7
    if type_ is float:
        return "0.25", 0.25
    if type_ is str:
        return "x", "x"
    if type_ == (Path | None):
        return "/etc/lienthong/x", Path("/etc/lienthong/x")
    if type_ == (str | None):
        return "x", "x"
    if type_ == tuple[str, ...]:
        return "nats://a:4222, nats://b:4222", ("nats://a:4222", "nats://b:4222")
    raise AssertionError(f"no sample for {type_}")


def field_type(cls: type[msgspec.Struct], field: str) -> Any:
    return next(f.type for f in msgspec.structs.fields(cls) if f.name == field)


def test_every_variable_the_documents_name_is_read() -> None:
    names = documented()
    assert names, "the README names its settings"
    for name in sorted(names):
        if name.endswith("_"):  # a family, `LIENTHONG_FORWARDER_<FIELD>`
            assert any(n.startswith(name) for n in READ), name
        elif name not in FOLDERS:
            assert name in READ, f"{name} is documented but nothing reads it"


@pytest.mark.parametrize("name", sorted(READ))
def test_a_variable_sets_its_field(name: str) -> None:
    cls, variables = READ[name]
    field = variables[name]
    given, expected = sample(field_type(cls, field))
    assert getattr(read(cls, variables, {}), field) != expected  # so the next line can fail
    assert getattr(read(cls, variables, {name: given}), field) == expected


def test_every_field_of_a_role_has_its_variable() -> None:
    for cls, variables in ENVIRONMENT:
        unread = set(cls.__struct_fields__) - set(variables.values())
        # The forwarder's outbox stage is built from its ack wait; a name is set by each role;
        # a party's name comes from its parties.json.
        assert unread <= {"outbox", "name", "party"}, (cls.__name__, unread)


def test_a_value_of_the_wrong_type_names_its_variable() -> None:
    cls, variables = READ["LIENTHONG_REPLICAS"]
    with pytest.raises(SettingsError, match="LIENTHONG_REPLICAS='three': Expected `int`"):
        read(cls, variables, {"LIENTHONG_REPLICAS": "three"})


def test_an_empty_variable_is_not_set() -> None:
    cls, variables = READ["LIENTHONG_DUPLICATE_WINDOW"]
    assert read(cls, variables, {"LIENTHONG_DUPLICATE_WINDOW": ""}) == StreamSettings()


def test_lienthong_home_is_where_the_embedded_server_keeps_its_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LIENTHONG_HOME", str(tmp_path))
    assert data_home() == tmp_path


def test_the_key_encryption_keys_lie_in_lienthong_kek_dir_else_under_the_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LIENTHONG_HOME", str(tmp_path))
    assert kek_dir() == tmp_path / "kek"
    monkeypatch.setenv("LIENTHONG_KEK_DIR", str(tmp_path / "keks"))
    assert kek_dir() == tmp_path / "keks"
