"""A slash command checked against the commands this bot has, before discord.py runs it.

Discord shows members the commands it last synced, which after an upgrade may not be the
bot's any more; a client may send an option of another type than declared. Such a command
gets a sentence that says what is wrong with it (an unknown command, a missing option, an
option of the wrong type or out of range), not "Something went wrong", and runs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import discord
from discord import app_commands

from bots.discord import texts
from bots.discord.errors import answer_at_once
from bots.discord.translate import Interaction

Command = app_commands.Command[Any, ..., Any]
CommandOrGroup = Command | app_commands.Group
_GROUPS = (discord.AppCommandOptionType.subcommand, discord.AppCommandOptionType.subcommand_group)
_SNOWFLAKE_TYPES = frozenset(
    {
        discord.AppCommandOptionType.user,
        discord.AppCommandOptionType.channel,
        discord.AppCommandOptionType.role,
        discord.AppCommandOptionType.mentionable,
    }
)


async def admit(tree: app_commands.CommandTree[Any], interaction: Interaction) -> bool:
    """Whether discord.py may run the interaction: an autocomplete gets no suggestions (no
    command of this bot offers any), a command that does not fit gets its sentence."""
    if interaction.type is discord.InteractionType.autocomplete:
        await answer_at_once(interaction, "", why="no suggestions")
        return False
    if interaction.type is not discord.InteractionType.application_command:
        return True
    problem = command_problem(tree, interaction.data, interaction.guild_id)
    if problem is None:
        return True
    await answer_at_once(interaction, problem, why="command does not fit")
    return False


def command_problem(
    tree: app_commands.CommandTree[Any], data: object, guild_id: int | None
) -> str | None:
    """What is wrong with a chat command's interaction data, as a sentence (None: nothing)."""
    if not isinstance(data, Mapping) or data.get("type", 1) != 1:
        return None  # context menus: the bot has none, discord.py answers them
    name = data.get("name")
    command = _top_level(tree, name, guild_id)
    if command is None:
        return texts.unknown_command(_shown(name))
    options = _options(data)
    path = [command.name]
    while options is not None and options and _kind(options[0]) in _GROUPS:
        if not isinstance(command, app_commands.Group):
            return texts.stale_command(" ".join(path))
        sub_name = options[0].get("name")
        found = command.get_command(sub_name) if isinstance(sub_name, str) else None
        if found is None:
            return texts.unknown_command(" ".join([*path, _shown(sub_name)]))
        command, options = found, _options(options[0])
        path.append(command.name)
    shown = " ".join(path)
    if options is None or isinstance(command, app_commands.Group):
        return texts.stale_command(shown)
    return _options_problem(command, shown, options, data.get("resolved"))


def _top_level(
    tree: app_commands.CommandTree[Any], name: object, guild_id: int | None
) -> CommandOrGroup | None:
    """The command as discord.py looks it up: the guild's, else the global one."""
    if not isinstance(name, str):
        return None
    found: CommandOrGroup | app_commands.ContextMenu | None = None
    if guild_id is not None:
        found = tree.get_command(name, guild=discord.Object(guild_id))
    if found is None:
        found = tree.get_command(name)
    return found if isinstance(found, app_commands.Command | app_commands.Group) else None


def _options_problem(
    command: Command, shown: str, options: list[Mapping[str, Any]], resolved: object
) -> str | None:
    given = {option.get("name"): option for option in options}
    params = {param.display_name: param for param in command.parameters}
    if any(name not in params for name in given) or len(given) != len(options):
        return texts.stale_command(shown)
    for name, param in params.items():
        option = given.get(name)
        if option is None:
            if param.required:
                return texts.missing_option(shown, name)
            continue
        if not _fits(param, option, resolved):
            return texts.wrong_option(shown, name, _expected(param))
    return None


def _fits(param: app_commands.Parameter, option: Mapping[str, Any], resolved: object) -> bool:
    """Whether the option carries a value of the parameter's type, range and choices."""
    if _kind(option) is not param.type:
        return False
    value = option.get("value")
    kind = param.type
    if kind is discord.AppCommandOptionType.string:
        choices = [choice.value for choice in param.choices]
        return isinstance(value, str) and (not choices or value in choices)
    if kind is discord.AppCommandOptionType.integer:
        return type(value) is int and _in_range(param, value)
    if kind is discord.AppCommandOptionType.number:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        return math.isfinite(value) and _in_range(param, value)
    if kind is discord.AppCommandOptionType.boolean:
        return isinstance(value, bool)
    if kind is discord.AppCommandOptionType.attachment:
        attachments = resolved.get("attachments") if isinstance(resolved, Mapping) else None
        found = attachments.get(str(value)) if isinstance(attachments, Mapping) else None
        return _is_snowflake(value) and _is_attachment(found)
    if kind in _SNOWFLAKE_TYPES:
        return _is_snowflake(value)
    return False


def _is_attachment(found: object) -> bool:
    """A resolved attachment with what discord.py reads of it."""
    if not isinstance(found, Mapping):
        return False
    fields = (found.get("id"), found.get("filename"), found.get("url"), found.get("size"))
    ident, filename, url, size = fields
    return (
        _is_snowflake(ident)
        and isinstance(filename, str)
        and isinstance(url, str)
        and type(size) is int
    )


def _in_range(param: app_commands.Parameter, value: float) -> bool:
    low, high = param.min_value, param.max_value
    return (low is None or value >= low) and (high is None or value <= high)


def _expected(param: app_commands.Parameter) -> str:
    """What the option should hold, in words."""
    kind = param.type
    if kind is discord.AppCommandOptionType.string and param.choices:
        return "one of " + ", ".join(str(choice.value) for choice in param.choices)
    if kind in (discord.AppCommandOptionType.integer, discord.AppCommandOptionType.number):
        noun = "a whole number" if kind is discord.AppCommandOptionType.integer else "a number"
        low, high = param.min_value, param.max_value
        if low is not None and high is not None:
            return f"{noun} from {low:,} to {high:,}"
        return noun
    return {
        discord.AppCommandOptionType.string: "text",
        discord.AppCommandOptionType.boolean: "true or false",
        discord.AppCommandOptionType.attachment: "an attached file",
    }.get(kind, "a value Discord offers in the list")


def _options(node: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The options of a command or subcommand (None when they are not a list of objects)."""
    options = node.get("options", [])
    if options is None:
        return []
    if not isinstance(options, list) or not all(isinstance(o, Mapping) for o in options):
        return None
    return options


def _kind(option: Mapping[str, Any]) -> discord.AppCommandOptionType | None:
    kind = option.get("type")
    if type(kind) is not int:
        return None
    try:
        return discord.AppCommandOptionType(kind)
    except ValueError:
        return None


def _is_snowflake(value: object) -> bool:
    text = str(value) if type(value) is int else value
    return isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 20


def _shown(name: object) -> str:
    """A command name as it may appear in a sentence: short, one word, no markdown."""
    text = name if isinstance(name, str) else "?"
    cleaned = "".join(ch for ch in text if ch.isalnum() or ch in "-_")[:32]
    return cleaned or "?"
