"""ComfyUI entry point of the DeepDream node pack.

ComfyUI imports this folder as a package and reads NODE_CLASS_MAPPINGS. The engine
lives in `dream_core` (no ComfyUI imports); `nodes` holds the thin wrappers, which
import the engine relatively, so the pack needs no installation step.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
