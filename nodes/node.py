"""What every node declares with its class: its menu category and display name."""

from __future__ import annotations

CATEGORY = "DeepDream"


def node(display_name: str, function: str = "run", category: str = CATEGORY):
    """Class decorator: the node's display name (shown as 'NAME (DeepDream)'), category and entry method."""

    def declare(cls: type) -> type:
        cls.CATEGORY = category
        cls.FUNCTION = function
        cls.DISPLAY_NAME = f"{display_name} (DeepDream)"
        return cls

    return declare
