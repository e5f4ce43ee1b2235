from .dsms import DSM_TYPES  # noqa: F401
from .gops import GOP_TYPES  # noqa: F401
from .heads import UniNetClsHead  # noqa: F401
from .uninet import ARCH_PRESETS, UniNet, parse_arch  # noqa: F401
from .retrofit import DSMDownsample, PyramidVisionTransformerDSM, SwinTransformerDSM  # noqa: F401
