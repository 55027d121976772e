"""ComfyUI node wrappers over dream_core: one module per node family."""

from .comfy_bridge import register_model_folder
from .creative_nodes import DreamFrames, DreamZoom, LayerSweep
from .dream_nodes import DetailReinject, DreamRegion, OctaveDream
from .model_nodes import LayerWeights, LoadFeatureModel
from .samples import register_sample_provider
from .train_nodes import TrainFeatureModel
from .video_nodes import DreamVideo, DreamVideoFile

register_model_folder()
register_sample_provider()

NODE_CLASS_MAPPINGS = {
    "LoadFeatureModel": LoadFeatureModel,
    "LayerWeights": LayerWeights,
    "OctaveDream": OctaveDream,
    "DetailReinject": DetailReinject,
    "DreamRegion": DreamRegion,
    "LayerSweep": LayerSweep,
    "DreamFrames": DreamFrames,
    "DreamZoom": DreamZoom,
    "DreamVideo": DreamVideo,
    "DreamVideoFile": DreamVideoFile,
    "TrainFeatureModel": TrainFeatureModel,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadFeatureModel": "Load Feature Model (DeepDream)",
    "LayerWeights": "Layer Weights (DeepDream)",
    "OctaveDream": "Octave Dream (DeepDream)",
    "DetailReinject": "Detail Reinject (DeepDream)",
    "DreamRegion": "Dream Region (DeepDream)",
    "LayerSweep": "Layer Sweep (DeepDream)",
    "DreamFrames": "Dream Frames (DeepDream)",
    "DreamZoom": "Dream Zoom (DeepDream)",
    "DreamVideo": "Dream Video (DeepDream)",
    "DreamVideoFile": "Dream Video File (DeepDream)",
    "TrainFeatureModel": "Train Feature Model (DeepDream)",
}
