"""The key-encryption key (KEK): what every dossier key is wrapped under, kept outside JetStream.

JetStream cannot be trusted to forget: a raft log on a cluster, a backup or a copied store still
holds every message it once had. So dossier keys are stored only wrapped (AES-256-GCM) under a
KEK that lives in a directory of its own (`LIENTHONG_KEK_DIR`, default `$LIENTHONG_HOME/kek`),
one file per KEK, readable by its owner only. Rotating it (`lienthong rotate-kek`) rewraps every
dossier key and destroys the old file: from then on no leftover copy of a wrapped key, wherever
it lies, can be unwrapped. A KMS could stand in for the directory behind the same class.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
CURRENT = "current"
"""The file naming the KEK new wraps use."""


class KekError(Exception):
    """The KEK directory is missing what it needs, or a wrapped key does not open under it."""


_directory: Path | None = None


def use_directory(directory: Path) -> None:
    """Where this process's KEKs lie: set once by the wiring (`LIENTHONG_KEK_DIR`), before any
    dossier key is made or opened."""
    global _directory
    _directory = directory


def kek_dir() -> Path:
    if _directory is None:
        raise KekError("no key-encryption key directory is set for this process")
    return _directory


class KeyEncryptionKeys:
    """The KEK directory: `<id>.kek` files (32 random bytes each) and `current` naming one."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or kek_dir()
        self._keys: dict[str, bytes] = {}
        """KEKs read so far: a KEK's file never changes while it exists. (`current` is read at
        each wrap, so a rotation by another process is followed at once.)"""

    def current_id(self, *, create: bool = False) -> str:
        """The id of the KEK in use; with `create`, a new one is made when there is none."""
        pointer = self.directory / CURRENT
        if pointer.exists():
            return pointer.read_text().strip()
        if not create:
            raise KekError(f"no key-encryption key in {self.directory}")
        return self.new()

    def ids(self) -> list[str]:
        """Every KEK kept in the directory."""
        if not self.directory.exists():
            return []
        return sorted(p.stem for p in self.directory.glob("*.kek"))

    def new(self) -> str:
        """Make a new KEK and make it the current one; its id."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        kek_id = secrets.token_hex(8)
        _write_private(self.directory / f"{kek_id}.kek", secrets.token_bytes(KEY_BYTES))
        _write_private(self.directory / CURRENT, kek_id.encode())
        return kek_id

    def _key(self, kek_id: str) -> bytes:
        if (known := self._keys.get(kek_id)) is not None:
            return known
        path = self.directory / f"{kek_id}.kek"
        try:
            key = self._keys[kek_id] = path.read_bytes()
            return key
        except FileNotFoundError:
            raise KekError(
                f"key-encryption key {kek_id} is not in {self.directory} (destroyed by a "
                "rotation, or this is another deployment's directory)"
            ) from None

    def wrap(self, key: bytes, context: bytes) -> tuple[str, bytes, bytes]:
        """(kek id, nonce, wrapped key) of `key`, bound to `context` (its dossier)."""
        kek_id = self.current_id(create=True)
        nonce = secrets.token_bytes(NONCE_BYTES)
        return kek_id, nonce, AESGCM(self._key(kek_id)).encrypt(nonce, key, context)

    def unwrap(self, kek_id: str, nonce: bytes, wrapped: bytes, context: bytes) -> bytes:
        try:
            return AESGCM(self._key(kek_id)).decrypt(nonce, wrapped, context)
        except InvalidTag:
            raise KekError(f"a dossier key does not open under KEK {kek_id}") from None

    def destroy(self, kek_id: str) -> None:
        """Overwrite, then remove, a KEK's file (a rotation's last step)."""
        self._keys.pop(kek_id, None)
        path = self.directory / f"{kek_id}.kek"
        if path.exists():
            with path.open("r+b") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
            path.unlink()


def _write_private(path: Path, data: bytes) -> None:
    """Written beside and renamed, mode 0600 from the start: never readable by others."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    partial.replace(path)
