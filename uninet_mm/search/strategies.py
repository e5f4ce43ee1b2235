"""Search strategies over token sequences: PPO (the paper's), random search and regularised
evolution (Real et al., AAAI 2019), with one interface so they share the budget, the loop, the
results file and resuming.

``propose(n)`` returns ``n`` token sequences, ``observe(tokens, rewards)`` feeds the rewards of
proposed sequences back (a failed candidate gets the loop's failure reward): the batch loop
observes each proposed batch whole, in order; the asynchronous loop proposes one candidate
whenever a worker is free and observes any ``batch_size`` finished ones, in the order they
finished, while others are still running. ``state_dict`` / ``load_state_dict`` hold everything
needed to continue exactly where a checkpoint left off.
"""
import random

import torch

from .controller import PPOController
from .registry import STRATEGIES, build_from


def rng_state(rng):
    """A :class:`random.Random` state as a tensor (a checkpoint stores it in microseconds;
    625 Python ints take milliseconds to pickle)."""
    version, internal, gauss = rng.getstate()
    return dict(version=version, internal=torch.tensor(internal, dtype=torch.int64),
                gauss=gauss)


def set_rng_state(rng, state):
    if isinstance(state, dict):
        state = (state['version'], tuple(int(x) for x in state['internal'].tolist()),
                 state['gauss'])
    rng.setstate(state)


class Strategy:
    name = 'strategy'

    def __init__(self, num_choices, seed=0):
        self.num_choices = [int(n) for n in num_choices]
        self.seed = int(seed)

    def propose(self, n):
        raise NotImplementedError

    def observe(self, tokens, rewards):
        """Rewards of proposed sequences not observed yet (any subset, any order)."""
        return {}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass

    def _random_tokens(self, rng):
        return [rng.randrange(n) for n in self.num_choices]


@STRATEGIES.register_module(name='random')
class RandomSearch(Strategy):
    """Uniform random token sequences."""
    name = 'random'

    def __init__(self, num_choices, seed=0):
        super().__init__(num_choices, seed)
        self.rng = random.Random(self.seed)

    def propose(self, n):
        return [self._random_tokens(self.rng) for _ in range(n)]

    def state_dict(self):
        return dict(rng=rng_state(self.rng))

    def load_state_dict(self, state):
        set_rng_state(self.rng, state['rng'])


@STRATEGIES.register_module(name='evolution')
class RegularizedEvolution(Strategy):
    """Aging evolution: a population of ``population_size`` random candidates; then each child
    is the best of ``sample_size`` members drawn at random, with ``mutations`` tokens
    re-drawn (always to a different choice); the oldest member dies when a child joins."""
    name = 'evolution'

    def __init__(self, num_choices, seed=0, population_size=8, sample_size=3, mutations=1):
        super().__init__(num_choices, seed)
        if population_size < 2 or not 1 <= sample_size <= population_size:
            raise ValueError(f'RegularizedEvolution: need population_size >= 2 and '
                             f'1 <= sample_size <= population_size, got {population_size}, '
                             f'{sample_size}')
        self.population_size, self.sample_size = population_size, sample_size
        self.mutations = mutations
        self.rng = random.Random(self.seed)
        self.population = []   # [(tokens, reward)], oldest first
        self.proposed = 0

    def mutate(self, tokens):
        child = list(tokens)
        mutable = [i for i, n in enumerate(self.num_choices) if n > 1]
        for i in self.rng.sample(mutable, min(self.mutations, len(mutable))):
            child[i] = self.rng.choice([k for k in range(self.num_choices[i]) if k != child[i]])
        return child

    def propose(self, n):
        out = []
        for _ in range(n):
            if self.proposed < self.population_size or not self.population:
                out.append(self._random_tokens(self.rng))
            else:
                contenders = self.rng.sample(self.population,
                                             min(self.sample_size, len(self.population)))
                parent = max(contenders, key=lambda m: m[1])[0]
                out.append(self.mutate(parent))
            self.proposed += 1
        return out

    def observe(self, tokens, rewards):
        for t, r in zip(tokens, rewards):
            self.population.append((list(t), float(r)))
            if len(self.population) > self.population_size:
                self.population.pop(0)
        return dict(population=len(self.population))

    def state_dict(self):
        return dict(rng=rng_state(self.rng), population=[list(m) for m in self.population],
                    proposed=self.proposed)

    def load_state_dict(self, state):
        set_rng_state(self.rng, state['rng'])
        self.population = [(list(t), r) for t, r in state['population']]
        self.proposed = state['proposed']


@STRATEGIES.register_module(name='ppo')
class PPOSearch(Strategy):
    """The paper's controller: an LSTM policy trained by PPO, one update per batch.

    ``unique=True`` re-draws (up to ``max_redraws`` times) a sequence this search has already
    proposed, so a converging policy spends the budget on new candidates; the remaining
    keyword arguments go to :class:`PPOController`.
    """
    name = 'ppo'

    def __init__(self, num_choices, seed=0, unique=True, max_redraws=20, **controller_kwargs):
        super().__init__(num_choices, seed)
        self.controller = PPOController(self.num_choices, seed=self.seed, **controller_kwargs)
        self.unique, self.max_redraws = bool(unique), int(max_redraws)
        self.seen = set()
        self.pending = []  # [(tokens, per-decision behaviour log-probs)], proposed, unobserved

    def propose(self, n):
        tokens, logp = self.controller.sample(n, per_token=True)
        if self.unique:
            keep, fresh = [], set()
            for i, t in enumerate(tokens):
                if tuple(t) not in self.seen and tuple(t) not in fresh:
                    keep.append(i)
                    fresh.add(tuple(t))
            out_t = [tokens[i] for i in keep]
            out_p = [logp[i] for i in keep]
            for _ in range(self.max_redraws):  # re-draw the repeats, in batches
                if len(out_t) == n:
                    break
                more_t, more_p = self.controller.sample(max(4 * n, 32), per_token=True)
                for t, lp in zip(more_t, more_p):
                    if len(out_t) < n and tuple(t) not in self.seen and tuple(t) not in fresh:
                        out_t.append(t)
                        out_p.append(lp)
                        fresh.add(tuple(t))
            taken = set(keep)
            for i in range(n):  # the policy has (almost) nothing new left: repeats allowed
                if len(out_t) == n:
                    break
                if i not in taken:
                    out_t.append(tokens[i])
                    out_p.append(logp[i])
            tokens, logp = out_t, out_p
            self.seen.update(tuple(t) for t in tokens)
        self.pending.extend((list(t), lp) for t, lp in zip(tokens, logp))
        return tokens

    def observe(self, tokens, rewards):
        """One PPO update on these proposed sequences, with the log-probabilities of the
        policy that sampled each (in the asynchronous loop an older one for some: the update
        weights them by ``min(1, pi_old / mu)``, as replayed samples)."""
        behaviour = []
        for t in tokens:
            i = next((i for i, (p, _) in enumerate(self.pending) if p == list(t)), None)
            if i is None:
                raise RuntimeError(f'PPOSearch.observe: {list(t)} was not proposed (or was '
                                   f'observed already)')
            behaviour.append(self.pending.pop(i)[1])
        return self.controller.update(tokens, rewards, behaviour)

    def state_dict(self):
        return dict(controller=self.controller.state_dict(),
                    pending=[[list(t), list(lp)] for t, lp in self.pending],
                    seen=torch.tensor(sorted(self.seen), dtype=torch.int64).reshape(
                        len(self.seen), len(self.num_choices)))

    def load_state_dict(self, state):
        self.controller.load_state_dict(state['controller'])
        self.pending = [(list(t), list(lp)) for t, lp in state['pending']]
        seen = state.get('seen')
        self.seen = set() if seen is None else {tuple(t) for t in torch.as_tensor(seen).tolist()}


def build_strategy(cfg, num_choices, seed=0):
    """``dict(type='ppo' | 'random' | 'evolution' | <registered>, **kwargs)`` -> a strategy."""
    cfg = dict(cfg)
    cfg.pop('name', None)
    cfg.setdefault('seed', seed)
    return build_from(STRATEGIES, 'search strategy', cfg, num_choices=num_choices)
