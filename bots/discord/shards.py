"""Discord shards: which this process runs, when they are all READY, and Discord's refusals.

A bot in many guilds is split into shards, each one gateway connection carrying the guilds with
`(guild_id >> 22) % shard_count` equal to its id (DMs go to shard 0). `DISCORD_SHARD_COUNT`
and `DISCORD_SHARD_IDS` spread them over processes; unset, discord.py asks Discord for the
recommended count and runs every shard in this one. This module imports no discord: the CLI
names the shards at start without loading the library.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.settings import Settings

INVALID_SHARD = 4010
SHARDING_REQUIRED = 4011


def describe(settings: Settings) -> str:
    """The shards this process runs, for the start log line: "0,1 of 4", "all of 4", "auto"."""
    count = settings.discord_shard_count
    if count is None:
        return "auto"  # discord.py's recommended count, every shard here
    if not settings.discord_shard_ids:
        return f"all of {count}"
    return ",".join(str(shard) for shard in settings.discord_shard_ids) + f" of {count}"


class ShardsReady:
    """Which shards of this process are READY (or resumed); ready means every one of them."""

    def __init__(self) -> None:
        self._up: set[int] = set()

    def up(self, shard_id: int) -> None:
        """The shard is READY, or resumed its session."""
        self._up.add(shard_id)

    def down(self, shard_id: int) -> None:
        """The shard lost its connection (discord.py reconnects it by itself)."""
        self._up.discard(shard_id)

    def all_of(self, shards: Iterable[int]) -> bool:
        """Whether each of `shards` is up."""
        return set(shards) <= self._up


class ShardingRefused(Exception):
    """Discord closed a shard's connection for its sharding (4010 invalid shard, 4011 more
    shards needed): no restart with the same settings can help."""

    def __init__(self, code: int, settings: Settings) -> None:
        count = settings.discord_shard_count
        if code == SHARDING_REQUIRED:
            reason = (
                f"Discord needs more shards than DISCORD_SHARD_COUNT={count} (close code 4011): "
                "raise it on every process, or unset it for Discord's recommended count"
            )
        else:
            reason = (
                f"Discord refused shards {describe(settings)} (close code 4010, invalid shard): "
                "check DISCORD_SHARD_COUNT and DISCORD_SHARD_IDS"
            )
        super().__init__(reason)
        self.code = code
