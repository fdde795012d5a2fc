"""Claims in Redis that let one process of many do a periodic round."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError


async def claim_round(redis: Redis, task: str, *, seconds: float) -> bool:
    """True for one caller per ``seconds`` for ``task``: every worker runs each periodic
    task, and only one of them does this round. False while Redis is unreachable."""
    try:
        claimed = await redis.set(f"claim:{task}", "1", ex=max(1, int(seconds)), nx=True)
    except RedisError:
        return False
    return bool(claimed)
