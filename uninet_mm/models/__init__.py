from .arch import ARCH_PRESETS, ArchSpec, StageSpec, arch_spec, parse_arch  # noqa: F401
from .heads import UniNetClsHead  # noqa: F401
from .retrofit import DSMDownsample, PyramidVisionTransformerDSM, SwinTransformerDSM  # noqa: F401
from .uninet import UniNet  # noqa: F401
