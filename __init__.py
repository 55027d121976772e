"""ComfyUI entry point of the DeepDream node pack.

ComfyUI imports this folder as a package and reads NODE_CLASS_MAPPINGS. The engine
lives in `dream_core` (no ComfyUI imports); `nodes` holds the thin wrappers, which
import the engine relatively, so the pack needs no installation step.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

# The frontend reads each node's help page from here: web/docs/NODE.md (tools/build_node_docs.py).
WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
