"""Random generators named by keys, so that every random draw of a run is reproducible."""

from __future__ import annotations

import hashlib

import torch


def seeded_generator(*keys: object) -> torch.Generator:
    """A CPU generator whose seed is a stable hash of ``keys`` (same on every machine)."""
    digest = hashlib.sha256(repr(keys).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
