"""CONTRACT section 1: units, the registry, and who may submit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client

from gateway.service import Gateway
from lienthong.embedded import NatsServer
from schemas.registry import Level, Registry, RegistryError, Unit
from tests import events as ev
from tests.helpers import GatewayStarter, connected, error_of, log_size, submit


def _registry_file(path: Path, units: list[dict[str, Any]]) -> Path:
    path.write_bytes(msgspec.json.encode({"about": "an operator's registry", "units": units}))
    return path


def _default_units() -> list[dict[str, Any]]:
    registry = Registry.load()
    return [msgspec.to_builtins(registry[code]) for code in registry.codes()]


async def test_event_from_a_unit_not_in_the_registry_is_refused_unknown_unit(
    gateway: Gateway, client: Client
) -> None:
    event = ev.received("HS-1", unit="99999")
    reply = await submit(client, "99999", event)
    assert error_of(reply)[0] == "unknown_unit"
    assert reply["event_id"] == event["event_id"]
    assert await log_size(client) == 0


async def test_unknown_unit_is_refused_in_a_batch_event_by_event(
    gateway: Gateway, client: Client
) -> None:
    batch = [ev.received("HS-1", unit="99999"), ev.copy("C-1", unit="99999")]
    replies = await submit(client, "99999", batch)
    assert [error_of(r)[0] for r in replies] == ["unknown_unit", "unknown_unit"]
    assert await log_size(client) == 0


async def test_operator_registry_file_adds_units_without_code_changes(
    tmp_path: Path, gateways: GatewayStarter, nats_server: NatsServer
) -> None:
    extra = {"code": "21999", "name": "Phường Thử Nghiệm", "level": "ward", "parent": "540"}
    registry = Registry.load(_registry_file(tmp_path / "units.json", [*_default_units(), extra]))
    assert "21999" in registry
    assert registry.report_units("21999") == ("21999", "540", "52")

    await gateways.start(registry=registry)
    async with connected(nats_server.url) as client:
        reply = await submit(client, "21999", ev.received("HS-1", unit="21999"))
        assert reply["ok"] is True, reply
        assert reply["duplicate"] is False
        assert await log_size(client) == 1


async def test_operator_registry_file_is_the_whole_registry(
    tmp_path: Path, gateways: GatewayStarter, nats_server: NatsServer
) -> None:
    """A unit the operator's file does not list is unknown, whatever the default holds."""
    units: list[dict[str, Any]] = [
        {"code": "99", "name": "Tỉnh Thử", "level": "province", "parent": None},
        {"code": "999", "name": "Thành phố Thử", "level": "district", "parent": "99"},
        {"code": "99999", "name": "Xã Thử", "level": "commune", "parent": "999"},
    ]
    registry = Registry.load(_registry_file(tmp_path / "units.json", units))
    await gateways.start(registry=registry)
    async with connected(nats_server.url) as client:
        assert (await submit(client, "99999", ev.received("HS-1", unit="99999")))["ok"] is True
        assert (await submit(client, "999", ev.copy("C-1", unit="999")))["ok"] is True
        assert error_of(await submit(client, ev.WARD, ev.received("HS-1")))[0] == "unknown_unit"
        assert await log_size(client) == 2


def test_default_registry_holds_binh_dinh_quy_nhon_and_its_21_wards_and_communes() -> None:
    registry = Registry.load()
    assert registry[ev.PROVINCE].level is Level.PROVINCE
    assert registry[ev.CITY].parent == ev.PROVINCE
    children = registry.children(ev.CITY)
    assert len(children) == 21
    assert {registry[c].level for c in children} <= {Level.WARD, Level.COMMUNE}
    assert ev.WARD in children
    assert ev.OTHER_WARD in children


def test_registry_gives_report_units_unit_city_province() -> None:
    registry = Registry.load()
    assert registry.report_units(ev.WARD) == (ev.WARD, ev.CITY, ev.PROVINCE)
    assert registry.report_units(ev.CITY) == (ev.CITY, ev.PROVINCE)
    assert registry.report_units(ev.PROVINCE) == (ev.PROVINCE,)


def test_registry_gives_province_of_every_unit() -> None:
    registry = Registry.load()
    for code in registry.codes():
        province = registry.province_of(code)
        assert province is not None
        assert province.code == ev.PROVINCE


@pytest.mark.parametrize("unit", [ev.CITY, ev.PROVINCE])
async def test_a_unit_with_units_below_submits_its_own_desks_events(
    gateway: Gateway, client: Client, unit: str
) -> None:
    reply = await submit(client, unit, ev.received("HS-1", unit=unit))
    assert reply["ok"] is True, reply


def test_registry_with_an_unknown_parent_is_refused() -> None:
    with pytest.raises(RegistryError):
        Registry([_unit("52", "province", None), _unit("21550", "ward", "540")])


def test_registry_with_a_cycle_is_refused() -> None:
    with pytest.raises(RegistryError):
        Registry(
            [_unit("1", "district", "2"), _unit("2", "district", "3"), _unit("3", "ward", "1")]
        )


def test_registry_with_a_unit_that_is_its_own_parent_is_refused() -> None:
    with pytest.raises(RegistryError):
        Registry([_unit("540", "district", "540")])


def test_registry_listing_a_code_twice_is_refused() -> None:
    with pytest.raises(RegistryError):
        Registry([_unit("52", "province", None), _unit("52", "province", None)])


def test_registry_file_with_unknown_parent_or_cycle_is_refused_on_load(tmp_path: Path) -> None:
    orphan = [{"code": "21550", "name": "Phường", "level": "ward", "parent": "540"}]
    with pytest.raises(RegistryError):
        Registry.load(_registry_file(tmp_path / "orphan.json", orphan))
    cycle = [
        {"code": "540", "name": "Thành phố", "level": "district", "parent": "21550"},
        {"code": "21550", "name": "Phường", "level": "ward", "parent": "540"},
    ]
    with pytest.raises(RegistryError):
        Registry.load(_registry_file(tmp_path / "cycle.json", cycle))


def test_registry_file_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    bad_level = [{"code": "52", "name": "Tỉnh", "level": "kingdom", "parent": None}]
    with pytest.raises(RegistryError):
        Registry.load(_registry_file(tmp_path / "bad.json", bad_level))


def test_registry_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"units": [', encoding="utf-8")
    with pytest.raises(RegistryError):
        Registry.load(path)


def _unit(code: str, level: str, parent: str | None) -> Unit:
    return Unit(code=code, name=f"unit {code}", level=Level(level), parent=parent)
