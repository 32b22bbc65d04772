"""worldcast: an inference engine for block-diffusion video world models."""

from worldcast.config import CacheConfig, EngineConfig, ModelConfig, ScheduleConfig
from worldcast.engine.engine import Engine
from worldcast.engine.request import BlockOutput, GenerationRequest, GenerationResult

__all__ = ["BlockOutput", "CacheConfig", "Engine", "EngineConfig", "GenerationRequest",
           "GenerationResult", "ModelConfig", "ScheduleConfig"]
__version__ = "0.1.0"
