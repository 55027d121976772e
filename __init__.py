"""ComfyUI entry point of the DeepDream node pack.

ComfyUI imports this package and reads NODE_CLASS_MAPPINGS; outside ComfyUI the
import is harmless. The engine lives in `dream_core` and never imports ComfyUI.
"""

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
