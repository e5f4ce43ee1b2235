from .guards import CheckpointGuardHook, NonFiniteLossHook  # noqa: F401
from .hooks import InferenceFormHook  # noqa: F401
