"""What every node declares in its schema: its id, its name in the menu and search, its category."""

from __future__ import annotations

from typing import Any

from .comfy_io import io, schema

CATEGORY = "DeepDream"
DREAM_ALIASES = ("deep dream", "deepdream", "inceptionism", "dreamify", "dream")
"""Search words for every node that dreams a picture (a 2026 core's node search finds them by these too)."""


def node_schema(
    node_id: str,
    display_name: str,
    description: str,
    inputs: list[io.Input],
    outputs: list[io.Output],
    aliases: tuple[str, ...] = DREAM_ALIASES,
    **more: Any,
) -> io.Schema:
    """A node's schema: shown as 'NAME (DeepDream)' in the DeepDream category."""
    return schema(
        node_id=node_id,
        display_name=f"{display_name} (DeepDream)",
        category=CATEGORY,
        description=description,
        inputs=inputs,
        outputs=outputs,
        search_aliases=list(aliases),
        **more,
    )
