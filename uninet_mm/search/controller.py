"""The search controller: an LSTM policy over architecture tokens, trained with PPO
(paper Sec. 3.5; MnasNet's controller with PPO as in the paper).

The policy emits one categorical decision per token. Every step feeds the embedding of the
previous decision (a learned start vector at step 0) plus an embedding of the position into an
``LSTMCell``; one linear head scores ``max(num_choices)`` logits and a per-position mask keeps
the decision's own choices (masked softmax).

PPO, made to learn from few, noisy evaluations (docs/search.md, "Controller"):

- advantages: ``'rank'`` (centred ranks of the rewards among the samples of the update, in
  [-1, 1]), ``'running'`` (reward minus a running mean, over a running standard deviation,
  clipped to +-3) or ``'ema'`` (the original: reward minus a moving average of batch means,
  over the batch std). With ranks or the clipped running scale a failed candidate (reward 0)
  is at most the worst sample, it cannot dominate an update.
- reuse (FNAS-style replay, Zhang et al. 2020): the last ``replay`` batches join each update,
  importance-weighted by ``min(1, pi_old / mu)`` (``mu``: the policy that sampled them,
  ``pi_old``: the policy at the start of the update; truncated as in ACER / V-trace).
- per-token clipping: the probability ratio of every decision is clipped to ``1 +- clip``
  (a per-sequence ratio of ``T`` decisions would cap each update at ``~clip`` nats in total).
- an entropy bonus on the per-token entropies; :meth:`PPOController.entropy` reports the
  policy's true entropy (nats; a Monte Carlo estimate of ``E[-log p(x)]`` summed over the
  decisions of sampled sequences), not the entropy along the greedy path.

Deterministic for a seed: the weights are initialised from ``seed`` without touching the global
RNG, sampling draws from the controller's own ``torch.Generator``, and ``state_dict`` holds the
generator state and the replay buffer, so a resumed controller samples exactly what the
uninterrupted one would.
"""
import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


@contextlib.contextmanager
def single_thread():
    """Run torch ops on one intra-op thread inside the block (restored afterwards)."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


class LSTMPolicy(nn.Module):
    """Autoregressive LSTM policy over a fixed sequence of categorical decisions."""

    def __init__(self, num_choices, hidden_size=64):
        super().__init__()
        num_choices = [int(n) for n in num_choices]
        if not num_choices or min(num_choices) < 1:
            raise ValueError(f'LSTMPolicy: every decision needs >= 1 choice, got {num_choices}')
        self.num_choices = num_choices
        self.num_tokens = len(num_choices)
        self.max_choices = max(num_choices)
        offsets = [0]
        for n in num_choices[:-1]:
            offsets.append(offsets[-1] + n)
        self.register_buffer('offsets', torch.tensor(offsets), persistent=False)
        mask = torch.zeros(self.num_tokens, self.max_choices, dtype=torch.bool)
        for t, n in enumerate(num_choices):
            mask[t, :n] = True
        self.register_buffer('mask', mask, persistent=False)
        self.start = nn.Parameter(torch.zeros(hidden_size))
        self.token_embed = nn.Embedding(sum(num_choices), hidden_size)
        self.pos_embed = nn.Embedding(self.num_tokens, hidden_size)
        self.lstm = nn.LSTMCell(hidden_size, hidden_size)
        self.head = nn.Linear(hidden_size, self.max_choices)
        nn.init.uniform_(self.token_embed.weight, -0.1, 0.1)
        nn.init.uniform_(self.pos_embed.weight, -0.1, 0.1)
        nn.init.zeros_(self.head.weight)  # uniform policy at the start
        nn.init.zeros_(self.head.bias)

    def forward(self, batch_size=None, tokens=None, generator=None, greedy=False,
                per_token=False):
        """Run the policy over a whole sequence.

        Either ``tokens`` (B, T) are given (teacher forcing: their log-probabilities), or
        ``batch_size`` sequences are sampled (with ``generator``) or picked greedily.

        Returns:
            tokens (B, T) long, log_prob (B,), entropy (B,): summed over positions
            (``per_token``: log_prob and entropy (B, T), one per decision).
        """
        if tokens is not None:
            tokens = torch.as_tensor(tokens, dtype=torch.long)
            batch_size = tokens.shape[0]
        h = c = self.start.new_zeros(batch_size, self.start.numel())
        x = self.start.expand(batch_size, -1)
        out_tokens, log_probs, entropies = [], [], []
        for t in range(self.num_tokens):
            h, c = self.lstm(x + self.pos_embed.weight[t], (h, c))
            logits = self.head(h).masked_fill(~self.mask[t], float('-inf'))
            logp = F.log_softmax(logits, dim=-1)
            p = logp.exp()
            entropies.append(-(p * logp.masked_fill(~self.mask[t], 0.)).sum(-1))
            if tokens is not None:
                tok = tokens[:, t]
            elif greedy:
                tok = logits.argmax(-1)
            else:
                tok = torch.multinomial(p.detach(), 1, generator=generator).squeeze(1)
            out_tokens.append(tok)
            log_probs.append(logp.gather(1, tok[:, None]).squeeze(1))
            x = self.token_embed(tok + self.offsets[t])
        logp, ent = torch.stack(log_probs, 1), torch.stack(entropies, 1)
        if not per_token:
            logp, ent = logp.sum(1), ent.sum(1)
        return torch.stack(out_tokens, 1), logp, ent


class PPOController:
    """LSTM policy + PPO (see the module doc).

    Args:
        num_choices (Sequence[int]): number of choices of every token position.
        seed (int): initialises the weights and the sampling generator.
        hidden_size (int): LSTM width.
        lr (float): Adam learning rate.
        clip (float): PPO ratio clip epsilon (per decision).
        ppo_epochs (int): optimisation epochs over each update's samples.
        entropy_coef (float): weight of the entropy bonus (per decision, summed).
        advantage (str): ``'rank'``, ``'running'`` or ``'ema'`` (module doc).
        replay (int): earlier batches reused in each update (0: each batch once).
        baseline_decay (float): decay of the running mean / variance (per batch).
        normalize_advantages (bool): ``'ema'`` only: divide by the batch std.
        max_grad_norm (float): gradient clipping.
        baseline_mode (str): ``'ema'`` only: ``'ema'`` or ``'batch'`` (this batch's mean).

    The defaults were chosen on one table, NAS-Bench-Graph ``cora`` (docs/search.md), and
    are reported unchanged on the other datasets.

    The policy is tiny and sequential: its ops run on one thread (:func:`single_thread`);
    on a shared CPU, OpenMP worker threads would make an update ~40x slower.
    """

    ADVANTAGES = ('rank', 'running', 'ema')

    def __init__(self, num_choices, seed=0, hidden_size=64, lr=1e-2, clip=0.2, ppo_epochs=4,
                 entropy_coef=1e-2, advantage='rank', replay=0, baseline_decay=0.5,
                 normalize_advantages=True, max_grad_norm=1.0, baseline_mode='ema'):
        if baseline_mode not in ('ema', 'batch'):
            raise ValueError(f"PPOController: baseline_mode must be 'ema' or 'batch', got "
                             f'{baseline_mode!r}')
        if advantage not in self.ADVANTAGES:
            raise ValueError(f'PPOController: advantage must be one of {self.ADVANTAGES}, got '
                             f'{advantage!r}')
        if int(replay) < 0:
            raise ValueError(f'PPOController: replay must be >= 0, got {replay!r}')
        self.baseline_mode, self.advantage, self.replay = baseline_mode, advantage, int(replay)
        self.seed = int(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.policy = LSTMPolicy(num_choices, hidden_size)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.clip, self.ppo_epochs, self.entropy_coef = clip, ppo_epochs, entropy_coef
        self.baseline_decay = baseline_decay
        self.normalize_advantages = normalize_advantages
        self.max_grad_norm = max_grad_norm
        self.baseline = None
        self.variance = None
        self.num_updates = 0
        self.buffer = []  # [(tokens (B, T), behaviour log-probs (B, T), rewards (B,))]

    @property
    def num_choices(self):
        return self.policy.num_choices

    @torch.no_grad()
    def sample(self, n, per_token=False):
        """``n`` token sequences and their log-probabilities under the current policy."""
        with single_thread():
            tokens, logp, _ = self.policy(batch_size=n, generator=self.generator,
                                          per_token=per_token)
        return tokens.tolist(), logp.tolist()

    @torch.no_grad()
    def greedy(self):
        """The most likely choice at every step."""
        with single_thread():
            tokens, _, _ = self.policy(batch_size=1, greedy=True)
        return tokens[0].tolist()

    @torch.no_grad()
    def log_prob(self, tokens):
        """Log-probability of one token sequence (or a list of them)."""
        batch = torch.as_tensor(tokens, dtype=torch.long)
        single = batch.dim() == 1
        with single_thread():
            _, logp, _ = self.policy(tokens=batch[None] if single else batch)
        return logp[0].item() if single else logp.tolist()

    def update(self, tokens, rewards, old_log_probs):
        """One PPO update on a batch of sampled sequences and their rewards.

        ``old_log_probs``: the behaviour policy's log-probabilities, one per sequence or
        (``sample(per_token=True)``) one per decision."""
        with single_thread():
            return self._update(tokens, rewards, old_log_probs)

    # -- advantages -------------------------------------------------------------------------
    def _advantages(self, rewards, batch_rewards):
        """Advantages of ``rewards`` (all samples of the update; the last ``len(batch)``
        are the new batch)."""
        if self.advantage == 'rank':
            n = len(rewards)
            if n < 2:
                return torch.zeros(n)
            order = rewards.argsort()
            ranks = torch.empty(n)
            ranks[order] = torch.arange(n, dtype=torch.float32)
            for v in rewards.unique():   # ties share their mean rank
                same = rewards == v
                ranks[same] = ranks[same].mean()
            return (ranks - (n - 1) / 2) / ((n - 1) / 2)
        if self.advantage == 'running':
            mean = self.baseline
            std = math.sqrt(max(self.variance, 1e-12))
            return ((rewards - mean) / max(std, 1e-6)).clamp(-3., 3.)
        # 'ema': the original estimator
        if self.baseline_mode == 'batch' and len(batch_rewards) > 1:
            adv = rewards - batch_rewards.mean()
        else:
            adv = rewards - self.baseline
        if self.normalize_advantages and len(adv) > 1 and adv.std() > 1e-8:
            adv = adv / adv.std()
        return adv

    def _track(self, rewards):
        """Running mean and variance of the rewards (per batch, ``baseline_decay``)."""
        m, v = rewards.mean().item(), rewards.var(unbiased=False).item()
        if self.baseline is None:
            self.baseline, self.variance = m, v
            return
        d = self.baseline_decay
        if self.advantage == 'running':
            # update before use: the new batch's deviation counts in the scale
            self.variance = d * self.variance + (1 - d) * (v + (m - self.baseline) ** 2)
        self.baseline = d * self.baseline + (1 - d) * m

    def _update(self, tokens, rewards, old_log_probs):
        tokens = torch.as_tensor(tokens, dtype=torch.long)
        rewards = torch.as_tensor(rewards, dtype=torch.float32)
        old = torch.as_tensor(old_log_probs, dtype=torch.float32)
        if not torch.isfinite(rewards).all():
            raise ValueError(f'PPOController: non-finite rewards {rewards.tolist()}')
        if old.dim() == 1:  # one per sequence: spread evenly (the per-token ratio needs T)
            old = (old / tokens.shape[1])[:, None].expand(-1, tokens.shape[1]).contiguous()
        if self.advantage == 'ema':
            if self.baseline is None:
                self.baseline = rewards.mean().item()
        elif self.advantage == 'running':
            self._track(rewards)
        self.buffer.append((tokens, old, rewards))
        self.buffer = self.buffer[-(self.replay + 1):]
        all_tokens = torch.cat([b[0] for b in self.buffer])
        behaviour = torch.cat([b[1] for b in self.buffer])
        all_rewards = torch.cat([b[2] for b in self.buffer])
        adv = self._advantages(all_rewards, rewards)
        with torch.no_grad():
            _, anchor, _ = self.policy(tokens=all_tokens, per_token=True)
            # truncated importance weights of the replayed samples (the new batch: ~1)
            weight = torch.exp(anchor.sum(1) - behaviour.sum(1)).clamp(max=1.)
        stats = dict(loss=0., clip_frac=0.)
        for _ in range(self.ppo_epochs):
            _, logp, entropy = self.policy(tokens=all_tokens, per_token=True)
            ratio = torch.exp(logp - anchor)
            a = adv[:, None]
            surrogate = torch.min(ratio * a, ratio.clamp(1 - self.clip, 1 + self.clip) * a)
            loss = -(weight * surrogate.sum(1)).mean() - \
                self.entropy_coef * entropy.sum(1).mean()
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.optimizer.step()
            stats = dict(loss=loss.item(),
                         clip_frac=((ratio - 1).abs() > self.clip).float().mean().item())
        if self.advantage == 'ema':
            d = self.baseline_decay
            self.baseline = d * self.baseline + (1 - d) * rewards.mean().item()
        elif self.advantage == 'rank':
            self._track(rewards)
        self.num_updates += 1
        stats.update(baseline=self.baseline, mean_reward=rewards.mean().item(),
                     updates=self.num_updates, entropy=self.entropy(64),
                     samples=len(all_rewards))
        return stats

    @torch.no_grad()
    def entropy(self, n=256):
        """The policy's entropy (nats): the mean over ``n`` sampled sequences of the summed
        per-decision entropies, an unbiased estimate of ``E[-log p(x)]``. Drawn from a
        generator of its own (seeded by the update count): sampling is not disturbed."""
        g = torch.Generator().manual_seed(self.seed * 1000003 + self.num_updates)
        with single_thread():
            _, _, ent = self.policy(batch_size=n, generator=g)
        return ent.mean().item()

    def max_entropy(self):
        return sum(math.log(n) for n in self.num_choices)

    def state_dict(self):
        """Plain containers and tensors (``torch.load(weights_only=True)`` reads them)."""
        return dict(policy=self.policy.state_dict(), optimizer=self.optimizer.state_dict(),
                    generator=self.generator.get_state(), baseline=self.baseline,
                    variance=self.variance, num_updates=self.num_updates, seed=self.seed,
                    num_choices=list(self.num_choices),
                    buffer=[list(b) for b in self.buffer])

    def load_state_dict(self, state):
        if list(state['num_choices']) != list(self.num_choices):
            raise ValueError(f'PPOController: checkpoint is for a space with choices '
                             f'{state["num_choices"]}, this one has {self.num_choices}')
        self.policy.load_state_dict(state['policy'])
        self.optimizer.load_state_dict(state['optimizer'])
        self.generator.set_state(state['generator'])
        self.baseline = state['baseline']
        self.variance = state.get('variance')
        self.num_updates = state['num_updates']
        self.buffer = [tuple(b) for b in state.get('buffer', [])]
