# Ablation (paper Sec. 6.2, Table 5): the search restricted to convolution GOPs, {Conv, DWConv},
# with all three DSMs (L, LG, G), around UniNet-B0: does the choice of DSM still matter when
# no stage attends or mixes tokens with an MLP? Everything else (choices of expansion, width,
# depth, the reward, the proxy task, the strategies) is the paper's space, uninet_space.py.
#   python tools/search.py configs/search/uninet_conv_only_space.py --print-space  # 2.4e14
#   python tools/search.py configs/search/uninet_conv_only_space.py --work-dir work_dirs/conv_only
# (quick check: --strategies random --budget 2 --batch-size 2 --cfg-options evaluator.epochs=1)
_base_ = ['./uninet_space.py']

search_space = dict(choices=dict(gop=['Conv', 'DWConv']))
