"""Tabular benchmarks: a search space whose every architecture was evaluated in advance, so a
strategy can be run for many seeds in seconds through the real search loop.

A table is a JSON Lines file, one architecture per line (docs/search.md)::

    {"choices": [9, 9, 9, 9, 9]}                       # optional first line: choices per token
    {"tokens": [0, 3, 1, 8, 2], "value": 0.801, "test": 0.795, "flops": 1.2e6, "arch": 17}

``value`` is what the search observes (validation accuracy), ``test`` (optional) is what the
final pick is scored by, ``flops`` (optional) makes the reward the package's accuracy x
(FLOPs / target)^alpha, ``arch`` (optional) names the architecture: token sequences with the
same ``arch`` are one architecture (the cache serves them, the distinct count counts it once).
A token sequence absent from the table is a failed candidate.
"""
import json
import math
import random
import zlib


class TableEntry:
    __slots__ = ('tokens', 'value', 'test', 'flops', 'arch')

    def __init__(self, tokens, value, test=None, flops=None, arch=None):
        self.tokens = tuple(int(t) for t in tokens)
        self.value = float(value)
        self.test = None if test is None else float(test)
        self.flops = None if flops is None else float(flops)
        self.arch = list(self.tokens) if arch is None else arch

    @property
    def score(self):
        """The figure a final pick is scored by: ``test`` when present, else ``value``."""
        return self.value if self.test is None else self.test


class Table:
    """Token sequences -> :class:`TableEntry`, with the number of choices per token."""

    def __init__(self, entries, num_choices=None, name='table'):
        self.name = name
        self.entries = {}
        for e in entries:
            if e.tokens in self.entries:
                raise ValueError(f'{name}: tokens {list(e.tokens)} appear twice')
            self.entries[e.tokens] = e
        if not self.entries:
            raise ValueError(f'{name}: the table has no architectures')
        lengths = {len(t) for t in self.entries}
        if len(lengths) != 1:
            raise ValueError(f'{name}: token sequences of different lengths {sorted(lengths)}')
        n = lengths.pop()
        if num_choices is None:
            num_choices = [1 + max(t[i] for t in self.entries) for i in range(n)]
        num_choices = [int(c) for c in num_choices]
        if len(num_choices) != n:
            raise ValueError(f'{name}: "choices" has {len(num_choices)} entries, the tokens '
                             f'have {n}')
        for t in self.entries:
            if any(not 0 <= x < c for x, c in zip(t, num_choices)):
                raise ValueError(f'{name}: tokens {list(t)} out of range of choices '
                                 f'{num_choices}')
        self.num_choices = num_choices
        self.has_flops = all(e.flops is not None for e in self.entries.values())

    def __len__(self):
        return len(self.entries)

    def get(self, tokens):
        return self.entries.get(tuple(int(t) for t in tokens))

    def architectures(self):
        """Distinct architectures: ``{arch key: entry}``."""
        out = {}
        for e in self.entries.values():
            out.setdefault(arch_key(e.arch), e)
        return out

    def worst_score(self):
        return min(e.score for e in self.entries.values())

    def best_score(self):
        return max(e.score for e in self.entries.values())


def arch_key(arch):
    """A hashable, canonical key of a decoded architecture (JSON with sorted keys)."""
    return json.dumps(arch, sort_keys=True, separators=(',', ':'))


def load_table(path):
    """Read a JSON Lines table (module doc); errors name the line and the fix."""
    entries, num_choices = [], None
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f'{path}:{i}: not valid JSON ({e.msg}); one JSON object per '
                                 f'line') from None
            if not isinstance(obj, dict):
                raise ValueError(f'{path}:{i}: expected a JSON object, got '
                                 f'{type(obj).__name__}')
            if 'choices' in obj and 'tokens' not in obj:
                if entries or num_choices is not None:
                    raise ValueError(f'{path}:{i}: "choices" must be the first line')
                num_choices = obj['choices']
                continue
            if 'tokens' not in obj or 'value' not in obj:
                raise ValueError(f'{path}:{i}: each line needs "tokens" (a list of ints) and '
                                 f'"value" (a number)')
            value = obj['value']
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f'{path}:{i}: "value" must be a finite number, got {value!r}')
            entries.append(TableEntry(obj['tokens'], value, obj.get('test'), obj.get('flops'),
                                      obj.get('arch')))
    return Table(entries, num_choices, name=path)


def write_table(table, path):
    """Write a :class:`Table` as JSON Lines (the format :func:`load_table` reads)."""
    with open(path, 'w') as f:
        f.write(json.dumps(dict(choices=table.num_choices)) + '\n')
        for e in table.entries.values():
            obj = dict(tokens=list(e.tokens), value=e.value)
            if e.test is not None:
                obj['test'] = e.test
            if e.flops is not None:
                obj['flops'] = e.flops
            if e.arch != list(e.tokens):
                obj['arch'] = e.arch
            f.write(json.dumps(obj) + '\n')


class TabularSpace:
    """The search space of a table: ``decode`` gives the entry's architecture (the tokens, or
    its ``arch``); a sequence absent from the table decodes to None and fails at evaluation."""

    def __init__(self, table):
        self.table = table
        self.num_choices = list(table.num_choices)
        self.num_tokens = len(self.num_choices)

    @property
    def size(self):
        return math.prod(self.num_choices)

    @property
    def num_architectures(self):
        """Distinct architectures in the table (sequences naming the same ``arch`` count once)."""
        return len(self.table.architectures())

    def describe(self):
        return (f'tabular space {self.table.name}: {self.num_tokens} tokens, choices '
                f'{self.num_choices}, {self.size} token sequences, {len(self.table)} in the '
                f'table, {self.num_architectures} distinct architectures')

    def signature(self):
        return dict(table=self.table.name, num_choices=list(self.num_choices),
                    entries=len(self.table))

    def decode(self, tokens):
        e = self.table.get(tokens)
        return None if e is None else e.arch

    def arch_key(self, arch):
        return arch_key(arch)


class TabularEvaluator:
    """Looks a candidate up in the table; ``noise`` adds Gaussian noise (sigma) to the
    observed ``value``, drawn once per (``noise_seed``, architecture): re-evaluating an
    architecture in the same seed sees the same noise, a new seed sees fresh noise."""

    metric_name = 'value'

    def __init__(self, table, noise=0., noise_seed=0):
        self.table, self.noise, self.noise_seed = table, float(noise), int(noise_seed)

    def complexity(self, arch):
        return 1.0, 0

    def noise_of(self, arch):
        if not self.noise:
            return 0.
        key = zlib.crc32(arch_key(arch).encode())
        return random.Random(f'{self.noise_seed}:{key}').gauss(0., self.noise)

    def __call__(self, arch, tokens=None, seed=0):
        e = self.table.get(tokens)
        if e is None:
            raise KeyError(f'tokens {list(tokens)} are not in the table')
        return dict(accuracy=e.value + self.noise_of(e.arch), flops=e.flops, params=0,
                    metric=self.metric_name,
                    extra=dict(value=e.value, test=e.test, score=e.score))
