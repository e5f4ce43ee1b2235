"""Checkpoint converters: the released UniNet layout -> ours (``official``, registered in
``uninet_mm.registry.CHECKPOINT_CONVERTERS`` as ``'released'``). The released-layout reference
model of the parity tests and the benchmark is ``uninet_mm.apis.released``."""
from .official import block_plan, convert_official, is_official

__all__ = ['block_plan', 'convert_official', 'is_official']
