"""The registry of units (CONTRACT section 1): codes, names, parents, and who reports for whom."""

from __future__ import annotations

import enum
from importlib import resources
from pathlib import Path

import msgspec


class Level(enum.StrEnum):
    PROVINCE = "province"
    DISTRICT = "district"
    WARD = "ward"
    COMMUNE = "commune"


class Unit(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name: str
    level: Level
    parent: str | None
    entitled_to_personal_data: bool = False
    """For a province: interconnection transfers may carry the applicant's personal data."""
    site: bool = False
    """Served by its own site (a leaf node with its own JetStream domain, gateway.sites): the
    unit and every unit below it are written there and nowhere else."""


class RegistryFile(msgspec.Struct, frozen=True, kw_only=True):
    units: list[Unit]
    about: str = ""


class RegistryError(ValueError):
    """The registry file is unreadable or inconsistent (unknown parent, cycle, duplicate code)."""


class Registry:
    """Units by code, with their chain of ancestors precomputed (the reports they count in)."""

    def __init__(self, units: list[Unit]) -> None:
        self._units: dict[str, Unit] = {}
        for unit in units:
            if unit.code in self._units:
                raise RegistryError(f"unit {unit.code} is listed twice")
            self._units[unit.code] = unit
        self._chains: dict[str, tuple[str, ...]] = {}
        for code in self._units:
            chain = [code]
            parent = self._units[code].parent
            while parent is not None:
                if parent not in self._units:
                    raise RegistryError(
                        f"unit {chain[-1]} has parent {parent}, not in the registry"
                    )
                if parent in chain:
                    raise RegistryError(f"units {' -> '.join(chain)} form a cycle")
                chain.append(parent)
                parent = self._units[parent].parent
            self._chains[code] = tuple(chain)

    @classmethod
    def load(cls, path: Path | None = None) -> Registry:
        """The operator's registry file, or the default one shipped with lienthong."""
        if path is None:
            data = resources.files("schemas").joinpath("units-quy-nhon.json").read_bytes()
        else:
            data = path.read_bytes()
        try:
            return cls(msgspec.json.decode(data, type=RegistryFile).units)
        except msgspec.DecodeError as e:  # not JSON, or not a registry
            raise RegistryError(f"registry {path or 'default'}: {e}") from e

    def __contains__(self, code: object) -> bool:
        return code in self._units

    def __getitem__(self, code: str) -> Unit:
        return self._units[code]

    def codes(self) -> list[str]:
        return list(self._units)

    def report_units(self, code: str) -> tuple[str, ...]:
        """The unit itself, then every ancestor: each report the unit's events count in."""
        return self._chains[code]

    def province_of(self, code: str) -> Unit | None:
        """The unit's province-level ancestor (itself if it is a province)."""
        for c in self._chains[code]:
            if self._units[c].level is Level.PROVINCE:
                return self._units[c]
        return None

    def site_of(self, code: str) -> str | None:
        """The site that writes this unit's entities (the nearest unit marked `site`, the unit
        itself or an ancestor), or None when the city's gateway writes them."""
        for c in self._chains[code]:
            if self._units[c].site:
                return c
        return None

    def sites(self) -> list[str]:
        return [u.code for u in self._units.values() if u.site]

    def children(self, code: str) -> list[str]:
        return [u.code for u in self._units.values() if u.parent == code]
