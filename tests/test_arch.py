"""The arch module (uninet_mm/models/arch.py): one record per stage, both arch-dict forms, what
the operator classes declare, and the layers of the package (no import cycle)."""
import ast
import os
import os.path as osp

import pytest

import uninet_mm  # noqa: F401  (registers the models)
from uninet_mm.models import StageSpec, arch_spec, parse_arch
from uninet_mm.registry import (
    DSMS,
    GOPS,
    operator_names,
    operator_needs_heads,
    operator_operates_on,
)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_b0_stages_are_table_3():
    """UniNet-B0 (paper Table 3, released code): operator, DSM, width, repeats, expansion and
    stride of every stage."""
    spec = arch_spec('b0')
    assert spec.stages == (
        StageSpec('DWConv', None, 24, 1, 1, 1),
        StageSpec('DWConv', 'L', 48, 2, 4, 2),
        StageSpec('DWConv', 'L', 80, 4, 6, 2),
        StageSpec('DWConv', 'L', 128, 4, 3, 2),
        StageSpec('SA', 'LG', 128, 4, 2, 1),
        StageSpec('SA', 'LG', 256, 8, 5, 2))
    assert (spec.stem_width, spec.head_dim, spec.input_size) == (32, 32, 160)


def test_stage_records_and_per_stage_lists_are_one_arch(small_arch):
    records = [dict(gop=g, dsm=d, width=w, depth=r, expansion=e, stride=s)
               for g, d, w, r, e, s in zip(small_arch['gops'], small_arch['dsms'],
                                           small_arch['widths'], small_arch['repeats'],
                                           small_arch['expansions'], small_arch['strides'])]
    scalars = {k: small_arch[k] for k in ('stem_width', 'head_dim', 'window_size')}
    as_records = parse_arch(dict(stages=records, **scalars))
    assert as_records == parse_arch(small_arch)
    assert as_records['gops'] == small_arch['gops'] and as_records['widths'] == [
        16, 24, 32, 48, 48, 64]
    # StageSpec objects work too, and an ArchSpec round-trips
    spec = arch_spec(dict(stages=[StageSpec(**r) for r in records], **scalars))
    assert arch_spec(spec) == spec and spec.to_dict() == as_records


def test_stage_record_errors(small_arch):
    rec = dict(gop='DWConv', dsm=None, width=16, depth=1, expansion=1, stride=1)
    with pytest.raises(KeyError, match=r"missing \['depth'\]"):
        parse_arch(dict(stages=[{k: v for k, v in rec.items() if k != 'depth'}]))
    with pytest.raises(KeyError, match='both "stages" and the per-stage lists'):
        parse_arch(dict(stages=[rec], widths=[16]))


def test_operator_classes_declare_what_they_need():
    """Paper Sec. 3.2/3.3: SA and LSA attend (heads), the MLP mixes tokens without heads,
    convolutions work on maps; LG- and G-DSM attend, L-DSM is a convolution."""
    assert set(operator_names(GOPS)) == {'DWConv', 'Conv', 'SA', 'LSA', 'MLP'}
    assert set(operator_names(DSMS)) == {'L', 'LG', 'G'}
    assert {n for n in operator_names(GOPS) if operator_needs_heads(GOPS, n)} == {'SA', 'LSA'}
    assert {n for n in operator_names(DSMS) if operator_needs_heads(DSMS, n)} == {'LG', 'G'}
    assert {n for n in operator_names(GOPS)
            if operator_operates_on(GOPS, n) == 'tokens'} == {'SA', 'LSA', 'MLP'}
    assert {n for n in operator_names(DSMS)
            if operator_operates_on(DSMS, n) == 'tokens'} == {'LG', 'G'}


# -- layers ------------------------------------------------------------------------------------
#: each package may import only those of a lower or equal rank (docs/DEVELOPING.md)
RANKS = {'registry': 0, 'utils': 0, 'version': 0, 'models': 1, 'datasets': 1, 'converters': 2,
         'search': 3, 'apis': 4, 'engine': 4, 'selfcheck': 5, '__init__': 5}
#: a package not in RANKS counts as shared tool code (rank 4): it may import everything below
OTHER_RANK = 4
#: known downward exceptions, each a function-level import (documented in DEVELOPING.md):
#: utils/flops.py builds a preset or a config's model to count it
ALLOWED_UP = {('utils', 'models')}


def _imports(path, package):
    """Top package names of ``uninet_mm`` that the module at ``path`` imports."""
    tree = ast.parse(open(path).read())
    rel = osp.relpath(path, osp.join(ROOT, 'uninet_mm')).split(os.sep)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = rel[:-1][:len(rel) - node.level]  # the package the dots point at
                parts = base + (node.module.split('.') if node.module else [])
                if parts:
                    out.add(parts[0])
                else:  # ``from . import x, y`` at the top of the package
                    out.update(a.name for a in node.names)
            elif node.module and node.module.startswith('uninet_mm.'):
                out.add(node.module.split('.')[1])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith('uninet_mm.'):
                    out.add(a.name.split('.')[1])
    return {osp.splitext(p)[0] for p in out} - {package}


def test_layers_import_only_downwards():
    bad = []
    for dirpath, _, files in os.walk(osp.join(ROOT, 'uninet_mm')):
        for f in files:
            if not f.endswith('.py'):
                continue
            path = osp.join(dirpath, f)
            rel = osp.relpath(path, osp.join(ROOT, 'uninet_mm')).split(os.sep)
            package = osp.splitext(rel[0])[0]
            for dep in _imports(path, package):
                if RANKS.get(dep, OTHER_RANK) > RANKS.get(package, OTHER_RANK) and \
                        (package, dep) not in ALLOWED_UP:
                    bad.append(f'{"/".join(rel)} imports uninet_mm.{dep}')
    assert not bad, bad


def test_models_import_no_converter():
    """The one former cycle: the backbone sniffed released checkpoints through converters."""
    for f in os.listdir(osp.join(ROOT, 'uninet_mm', 'models')):
        if f.endswith('.py'):
            deps = _imports(osp.join(ROOT, 'uninet_mm', 'models', f), 'models')
            assert 'converters' not in deps and 'search' not in deps, f
