"""NAS-Bench-Graph (Qin et al., NeurIPS 2022 Datasets and Benchmarks) as a tabular benchmark.

The PyPI package ``nas-bench-graph==1.4.0`` bundles, for each of 9 graph datasets, the
validation and test accuracy, latency and parameter count of all 26,206 distinct GNN
architectures of its space (``nas_bench_graph/light/<name>.bench``; proteins: 2,021 of a
5-operation space). An architecture is one of 9 link patterns (how the 4 computing nodes
connect) and 4 operations of 9 (``gat gcn gin cheb sage arma graph fc skip``; proteins:
``gcn sage arma fc skip``); as tokens: ``[link, op0, op1, op2, op3]``, 9^5 = 59,049 sequences
(proteins 9 x 5^4 = 5,625). Sequences that describe the same computation (isomorphic links,
skip connections moved) map to one architecture by the package's own canonical hash
(``Arch.valid_hash``); ``skip`` everywhere is not an architecture (a failed candidate).

The ``.bench`` files are pickles. They are read with a restricted unpickler that knows exactly
two globals, ``numpy.core.multiarray.scalar`` and ``numpy.dtype``, and replaces both by
decoders of little-endian float64 scalars written here: nothing of numpy (or anything else)
is called while loading, and any other global is refused.
"""
import importlib.util
import io
import os.path as osp
import pickle
import struct

from .tabular import Table, TableEntry

DATASETS = ('cora', 'citeseer', 'pubmed', 'cs', 'physics', 'photo', 'computers', 'arxiv',
            'proteins')
LINKS = 9
OPS = ('gat', 'gcn', 'gin', 'cheb', 'sage', 'arma', 'graph', 'fc', 'skip')
OPS_PROTEINS = ('gcn', 'sage', 'arma', 'fc', 'skip')


class BenchFileError(ValueError):
    """A .bench file that is not what NAS-Bench-Graph ships (or tries to run code)."""


class _Float64DType:
    """Stand-in for ``numpy.dtype('f8')`` while unpickling; anything else is refused."""

    def __init__(self, name, align=False, copy=True):
        if name != 'f8':
            raise BenchFileError(f'NAS-Bench-Graph: unexpected dtype {name!r} (only f8)')
        self.byteorder = '<'

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ('<', '='):
            raise BenchFileError(f'NAS-Bench-Graph: unexpected dtype state {state!r}')


def _float64_scalar(dtype, data):
    if not isinstance(dtype, _Float64DType) or not isinstance(data, bytes) or len(data) != 8:
        raise BenchFileError('NAS-Bench-Graph: unexpected numpy scalar')
    return struct.unpack('<d', data)[0]


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the two numpy globals of the .bench files, to the stand-ins above."""

    ALLOWED = {('numpy.core.multiarray', 'scalar'): _float64_scalar,
               ('numpy._core.multiarray', 'scalar'): _float64_scalar,
               ('numpy', 'dtype'): _Float64DType}

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise BenchFileError(f'refusing to load global {module}.{name} from a .bench '
                                 f'file: only float64 numpy scalars are allowed') from None


def read_bench(path):
    """``{hash: {'valid_perf', 'perf', 'latency', 'para'}}`` of a .bench file, safely."""
    with open(path, 'rb') as f:
        data = f.read()
    try:
        bench = RestrictedUnpickler(io.BytesIO(data)).load()
    except BenchFileError:
        raise
    except Exception as e:  # noqa: BLE001  (a damaged file)
        raise BenchFileError(f'{path}: not a NAS-Bench-Graph .bench file ({type(e).__name__}: '
                             f'{e})') from None
    if not isinstance(bench, dict) or not all(
            isinstance(v, dict) and {'valid_perf', 'perf'} <= set(v) for v in bench.values()):
        raise BenchFileError(f'{path}: expected a dict of {{hash: {{valid_perf, perf, ...}}}}')
    return bench


def package_dir():
    spec = importlib.util.find_spec('nas_bench_graph')
    if spec is None or not spec.submodule_search_locations:
        raise ImportError('NAS-Bench-Graph is not installed: pip install nas-bench-graph==1.4.0 '
                          '(requirements/search.txt)')
    return list(spec.submodule_search_locations)[0]


def bench_path(name):
    if name not in DATASETS:
        raise KeyError(f'NAS-Bench-Graph has no dataset {name!r}; valid names are '
                       f'{list(DATASETS)}')
    return osp.join(package_dir(), 'light', f'{name}.bench')


def canonical_hash(link, ops):
    """The package's canonical hash of (link pattern index, op names) (``Arch.valid_hash``)."""
    from nas_bench_graph.architecture import Arch, link_list
    return Arch(list(link_list[link]), list(ops)).valid_hash()


def load_nasbench_graph(name):
    """The :class:`Table` of one dataset: tokens ``[link, op0..op3]``; ``value`` = validation
    accuracy, ``test`` = test accuracy, ``arch`` = the canonical hash."""
    bench = read_bench(bench_path(name))
    ops = OPS_PROTEINS if name == 'proteins' else OPS
    n = len(ops)
    entries = []
    for link in range(LINKS):
        for a in range(n):
            for b in range(n):
                for c in range(n):
                    for d in range(n):
                        names = [ops[a], ops[b], ops[c], ops[d]]
                        if names == ['skip'] * 4:
                            continue
                        h = canonical_hash(link, names)
                        rec = bench.get(h)
                        if rec is None:
                            continue
                        entries.append(TableEntry([link, a, b, c, d], rec['valid_perf'],
                                                  rec['perf'], arch=int(h)))
    return Table(entries, [LINKS] + [n] * 4, name=f'nasbench_graph/{name}')
