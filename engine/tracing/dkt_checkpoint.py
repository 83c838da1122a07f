"""DKT's checkpoint: what training learns, as a directory or as one blob.

A :class:`Checkpoint` is a plain value: the configuration, the skill vocabulary, the network's
weights (a state dict) and the training summary. On disk it is a directory of ``model.json``
(format, version, configuration, skill ids, summary) and ``weights.pt`` (the state dict, read
with ``weights_only=True``, so a checkpoint cannot run code); as bytes (what the API stores) it
is a zip archive of the same two files. The trainer writes checkpoints, the tracer reads them,
and neither knows the other.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.tracing.dkt_config import DKTConfig

FILE_FORMAT = "tutor-dkt"
#: 2: the network is a list of members (version 1 held one network, read as one member)
FILE_VERSION = 2
CONFIG_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"

Weights = dict[str, torch.Tensor]


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A trained DKT network: configuration, skill ids, weights and training summary."""

    config: DKTConfig
    skills: tuple[str, ...]
    weights: Weights
    training: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ directory
    def write(self, path: str | Path) -> None:
        """Write ``path/model.json`` and ``path/weights.pt`` (each replaced atomically)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        _replace(path / WEIGHTS_FILE, self._weight_bytes())
        _replace(path / CONFIG_FILE, json.dumps(self._document(), indent=1).encode())

    @classmethod
    def read(cls, path: str | Path) -> Checkpoint:
        """The checkpoint in directory ``path``; FileNotFoundError or ValueError saying why
        not."""
        path = Path(path)
        doc = read_document(path)
        return cls.from_parts(doc, (path / WEIGHTS_FILE).read_bytes(), source=str(path))

    # ------------------------------------------------------------------ one blob
    def to_bytes(self) -> bytes:
        """A zip archive of ``model.json`` and ``weights.pt``."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(CONFIG_FILE, json.dumps(self._document()))
            archive.writestr(WEIGHTS_FILE, self._weight_bytes())
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> Checkpoint:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                doc = json.loads(archive.read(CONFIG_FILE))
                weights = archive.read(WEIGHTS_FILE)
        except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"{source}: not a {FILE_FORMAT} checkpoint archive ({exc})"
                             ) from None
        return cls.from_parts(doc, weights, source=source)

    @classmethod
    def from_parts(cls, doc: Any, weights: bytes, *, source: str) -> Checkpoint:
        """A checkpoint from its ``model.json`` document and the bytes of ``weights.pt``."""
        doc = check_document(doc, source)
        config = doc["config"] if doc["version"] > 1 else {**doc["config"], "members": 1}
        try:
            state = torch.load(io.BytesIO(weights), weights_only=True, map_location="cpu")
        except (RuntimeError, pickle.UnpicklingError, EOFError) as exc:
            raise ValueError(f"{source}: the weights are not a readable state dict ({exc})"
                             ) from None
        if doc["version"] == 1:
            state = {f"members.0.{k}": v for k, v in state.items()}
        return cls(DKTConfig.from_dict(config), tuple(str(s) for s in doc["skills"]), state,
                   doc.get("training", {}))

    # ------------------------------------------------------------------ internals
    def _document(self) -> dict[str, Any]:
        return {"format": FILE_FORMAT, "version": FILE_VERSION, "model": "dkt",
                "config": asdict(self.config), "skills": list(self.skills),
                "training": self.training}

    def _weight_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.weights.items()}, buffer)
        return buffer.getvalue()


def read_document(path: Path) -> dict[str, Any]:
    """The ``model.json`` of a checkpoint directory, checked for format and version."""
    if not path.is_dir():
        raise FileNotFoundError(f"DKT checkpoint directory not found: {path}")
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path} is not a DKT checkpoint: {name} is missing")
    try:
        doc = json.loads((path / CONFIG_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path / CONFIG_FILE}: not JSON ({exc})") from None
    return check_document(doc, str(path / CONFIG_FILE))


def check_document(doc: Any, source: str) -> dict[str, Any]:
    """``doc`` if it is a checkpoint document this engine reads, else a ValueError."""
    if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
        raise ValueError(f"{source}: not a {FILE_FORMAT} checkpoint")
    if doc.get("version") not in (1, FILE_VERSION):
        raise ValueError(f"{source}: {FILE_FORMAT} version {doc.get('version')} is not "
                         f"supported (this engine reads versions 1 to {FILE_VERSION})")
    if not isinstance(doc.get("skills"), list) or not isinstance(doc.get("config"), dict):
        raise ValueError(f"{source}: the checkpoint lacks its skill ids or configuration")
    return doc


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file: a reader (or a run killed midway)
    sees the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
