"""Instagram-style 64-bit ids: 41 bits of milliseconds, 13 bits of logical shard, 10 of sequence.

Ids are made inside PostgreSQL by each shard schema's ``next_id()`` (see the first
shard migration); this module only reads them, so routing never needs a lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

# 2026-01-01T00:00:00Z. A recent epoch matters: the signed bigint turns negative once the
# millisecond field reaches 2**40, about 34.8 years after the epoch (in late 2060).
EPOCH_MS = 1_767_225_600_000
TIMESTAMP_BITS = 41
SHARD_BITS = 13
SEQUENCE_BITS = 10
SHARD_SHIFT = SEQUENCE_BITS
TIMESTAMP_SHIFT = SHARD_BITS + SEQUENCE_BITS
SHARD_MASK = (1 << SHARD_BITS) - 1
SEQUENCE_MASK = (1 << SEQUENCE_BITS) - 1
MAX_ID = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class IdParts:
    milliseconds_since_epoch: int
    shard: int
    sequence: int

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp((EPOCH_MS + self.milliseconds_since_epoch) / 1000, tz=UTC)


def shard_of(object_id: int) -> int:
    return (object_id >> SHARD_SHIFT) & SHARD_MASK


def decode_id(object_id: int) -> IdParts:
    return IdParts(
        milliseconds_since_epoch=object_id >> TIMESTAMP_SHIFT,
        shard=shard_of(object_id),
        sequence=object_id & SEQUENCE_MASK,
    )


def compose_id(*, milliseconds_since_epoch: int, shard: int, sequence: int) -> int:
    """Build an id from its parts; used for id-range bounds such as "posts since T"."""
    if not 0 <= shard <= SHARD_MASK:
        raise ValueError(f"shard {shard} does not fit in {SHARD_BITS} bits")
    return (
        (milliseconds_since_epoch << TIMESTAMP_SHIFT)
        | (shard << SHARD_SHIFT)
        | (sequence & SEQUENCE_MASK)
    )


def lowest_id_at(moment: datetime) -> int:
    """The smallest id any shard can produce at ``moment``: a keyset bound for time ranges."""
    millis = int(moment.timestamp() * 1000) - EPOCH_MS
    return max(0, millis) << TIMESTAMP_SHIFT


def is_valid_id(value: int) -> bool:
    return 0 < value <= MAX_ID
