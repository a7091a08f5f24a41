"""Generator networks and the registry of shipped models."""

from .generator import (
    PRESETS,
    GeneratorOutput,
    ResNetGenerator,
    build_generator,
    count_parameters,
    minimum_input_size,
    receptive_field,
)

__all__ = [
    "PRESETS",
    "GeneratorOutput",
    "ResNetGenerator",
    "build_generator",
    "count_parameters",
    "minimum_input_size",
    "receptive_field",
]
