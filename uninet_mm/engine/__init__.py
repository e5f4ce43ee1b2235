"""Running MMEngine's Runner: hooks, guards, several processes with or without GPUs
(:mod:`.dist`)."""
from .dist import CPUDistributedDataParallel, prepare_cpu_distributed
from .guards import CheckpointGuardHook, NonFiniteLossHook
from .hooks import InferenceFormHook

__all__ = [
    'CPUDistributedDataParallel', 'CheckpointGuardHook', 'InferenceFormHook', 'NonFiniteLossHook',
    'prepare_cpu_distributed'
]
