"""Weight-shared refinement loops, plain or gated by :class:`abn.modulators.QueryKeyGate`.

Chapter 9 asks whether the query-key gate of Plastic Neural Networks (Choi, 2025) helps
the loop it was made for: one shared module proposes an update ``delta`` to a state
``h``, ``h <- h + delta`` (plain) or ``h <- h + g * delta`` (gated), repeated T times.
Two settings, each a :class:`Task` (data, model, recipe):

* :func:`pnn_task`: the refiner as PNN builds it (``pnn/models/pnn.py``,
  ``PlasticNeuralNetwork`` with its ``DeltaRefiner``): token and position embeddings,
  ``h0 = LayerNorm(...)``, ``delta = LayerNorm(FFN(LayerNorm(h + Attn(h))))``, 4 steps,
  the loss ``sum_t w_t L(h_t)`` with ``w = 0.1, 0.2, 0.3, 0.4``, every ``nn.Linear``
  N(0, 0.02) with zero biases. Its data is a masked-token task on sequences from a
  random Markov chain, masked as PNN's ``MLMDataset`` masks text.
* :func:`spiral_task`: a smaller toy (an MLP update ``delta = U tanh(V h + X x)`` that
  re-reads the input every step, 6 steps, loss on the last step only, PyTorch's default
  init) on points of three spiral arms, which can be drawn.

:func:`compare` trains the plain and the gated model of a task from the same seeds with
the same budget and reads both at every step, also beyond the trained depth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from torch import nn

from abn import models
from abn.gates import record_gates
from abn.modulators import QueryKeyGate

PNN_STEP_WEIGHTS = (0.1, 0.2, 0.3, 0.4)  # PlasticNeuralNetwork.compute_recurrent_loss
IGNORE = -100  # label of positions without a loss (PNN's MLMDataset, F.cross_entropy)


# ----------------------------------------------------------------------------- models
class Refiner(nn.Module):
    """Base of both loops: ``states`` gives h_0 .. h_T, ``head`` reads a state out.

    ``steps`` is the trained depth T; ``gate`` is the loop's QueryKeyGate, None if plain.
    """

    steps: int
    head: nn.Module
    gate: QueryKeyGate | None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The (gated or plain) update added to ``h``; ``x`` is the loop's input."""
        raise NotImplementedError

    def states(self, x: torch.Tensor, steps: int | None = None) -> list[torch.Tensor]:
        """[h_0, h_1, ..., h_T] for T = ``steps`` (default: the trained depth)."""
        h = self.embed(x)
        out = [h]
        for _ in range(self.steps if steps is None else steps):
            h = h + self.update(h, x)
            out.append(h)
        return out

    def forward(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        return self.head(self.states(x, steps)[-1])


class ToyRefiner(Refiner):
    """h0 = E x; T times: delta = U tanh(V h + X x), h <- h + gate(h, delta) (or + delta)."""

    def __init__(self, d: int = 32, steps: int = 6, gated: bool = True, inputs: int = 2,
                 classes: int = 3) -> None:
        super().__init__()
        self.steps = steps
        self.embed_x, self.inject = nn.Linear(inputs, d), nn.Linear(inputs, d)  # E, X
        self.V, self.U = nn.Linear(d, d), nn.Linear(d, d)
        self.gate = QueryKeyGate(d) if gated else None
        self.head = nn.Linear(d, classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_x(x)

    def update(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        delta = self.U(torch.tanh(self.V(h) + self.inject(x)))
        return self.gate(h, delta) if self.gate is not None else delta


class DeltaRefiner(nn.Module):
    """PNN's shared update: delta = LayerNorm(FFN(LayerNorm(h + Attn(h)))), then the gate.

    Layer for layer PNN's ``DeltaRefiner`` (post-norm attention, GELU FFN, dropout in
    the same places); the gate is :class:`~abn.modulators.QueryKeyGate`, which reads
    ``[batch, length, d]`` element-wise as PNN's does. ``gated=False`` drops the gate:
    ``h <- h + delta_raw``. PNN zero-initialises the FFN's last layer here, but
    ``PlasticNeuralNetwork._init_weights`` runs afterwards and draws it again from
    N(0, 0.02); :func:`pnn_init_` does the same, so we skip the dead zero-init.
    """

    def __init__(self, d: int, heads: int, ffn: int, dropout: float, gated: bool) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.attn_layer_norm, self.attn_dropout = nn.LayerNorm(d), nn.Dropout(dropout)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(ffn, d), nn.Dropout(dropout))
        self.ffn_layer_norm = nn.LayerNorm(d)
        self.gate = QueryKeyGate(d) if gated else None

    def proposal(self, h: torch.Tensor) -> torch.Tensor:
        """delta_raw, what the key reads: layer-normalised, so its size is the norm's."""
        attn, _ = self.attention(h, h, h, need_weights=False)
        return self.ffn_layer_norm(self.ffn(self.attn_layer_norm(h + self.attn_dropout(attn))))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        delta = self.proposal(h)
        return self.gate(h, delta) if self.gate is not None else delta


class PNNRefiner(Refiner):
    """PNN's ``PlasticNeuralNetwork`` at any size: embeddings, one shared refiner, a head.

    ``h0 = Dropout(LayerNorm(token + position embeddings))``; the input is not re-read
    after that; ``h_t = h_{t-1} + DeltaRefiner(h_{t-1})``; the head (PNN's ``mlm_head``)
    reads every h_t. Sequences have one length here, so there is no padding mask.
    """

    def __init__(self, vocab: int, d: int = 32, heads: int = 4, ffn: int = 64,
                 max_length: int = 16, steps: int = 4, gated: bool = True,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.steps = steps
        self.token_embeddings = nn.Embedding(vocab, d)
        self.position_embeddings = nn.Embedding(max_length, d)
        self.embedding_layer_norm, self.embedding_dropout = nn.LayerNorm(d), nn.Dropout(dropout)
        self.delta_refiner = DeltaRefiner(d, heads, ffn, dropout, gated)
        self.head = nn.Linear(d, vocab)
        pnn_init_(self)

    @property
    def gate(self) -> QueryKeyGate | None:
        return self.delta_refiner.gate

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(x.shape[1], device=x.device)
        h = self.token_embeddings(x) + self.position_embeddings(positions)
        return self.embedding_dropout(self.embedding_layer_norm(h))

    def update(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.delta_refiner(h)


def pnn_init_(model: nn.Module) -> nn.Module:
    """PNN's ``_init_weights`` (BERT's): Linear and Embedding weights N(0, 0.02), Linear
    biases 0, LayerNorm 1 and 0. The gate's temperature keeps sqrt(d); the attention's
    fused in-projection is not an ``nn.Linear`` and keeps PyTorch's init, as in PNN."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


# ----------------------------------------------------------------------------- data
def spirals(n: int, seed: int, arms: int = 3, noise: float = 0.08
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """n points on ``arms`` interleaved spiral arms (labels = arm), with Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, arms, (n,), generator=g)
    r = torch.rand(n, generator=g)
    angle = 2 * math.pi * (r + y / arms)  # one turn per arm, arms rotated apart
    x = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1)
    return x + noise * torch.randn(n, 2, generator=g), y


def markov_chain(vocab: int, successors: int, seed: int) -> torch.Tensor:
    """A random transition matrix: each token has ``successors`` possible next tokens."""
    if not 1 <= successors <= vocab:
        raise ValueError(f"successors must be in 1..vocab={vocab}, got {successors}.")
    g = torch.Generator().manual_seed(seed)
    P = torch.zeros(vocab, vocab)
    for a in range(vocab):
        P[a, torch.randperm(vocab, generator=g)[:successors]] = 0.5 + torch.rand(successors,
                                                                                 generator=g)
    return P / P.sum(dim=1, keepdim=True)


def sample_chain(P: torch.Tensor, n: int, length: int, g: torch.Generator) -> torch.Tensor:
    """n sequences of ``length`` tokens: a uniform first token, then P's transitions."""
    x = torch.empty(n, length, dtype=torch.long)
    x[:, 0] = torch.randint(0, P.shape[0], (n,), generator=g)
    for i in range(1, length):
        x[:, i] = torch.multinomial(P[x[:, i - 1]], 1, generator=g)[:, 0]
    return x


def mask_tokens(x: torch.Tensor, mask_id: int, g: torch.Generator, p: float = 0.15
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """PNN's ``MLMDataset`` rule: each token becomes [MASK] with probability p (always
    [MASK], no 80/10/10 split); labels are the original tokens there, IGNORE elsewhere."""
    masked = torch.rand(x.shape, generator=g) < p
    return x.masked_fill(masked, mask_id), x.masked_fill(~masked, IGNORE)


def chain_posterior(P: torch.Tensor, ids: torch.Tensor, mask_id: int) -> torch.Tensor:
    """p(x_i | every visible token) under the chain, batch x length x vocab.

    Forward-backward with visible tokens clamped (uniform first token): the best any
    model can do on a masked position is the arg max of this, so its accuracy is the
    task's ceiling.
    """
    n, length = ids.shape
    vocab = P.shape[0]
    seen = F.one_hot(ids.clamp(max=vocab - 1), vocab).to(P.dtype)
    seen[ids == mask_id] = 1.0  # a masked position allows every token
    alpha = [seen[:, 0] / vocab]
    for i in range(1, length):
        a = (alpha[-1] @ P) * seen[:, i]
        alpha.append(a / a.sum(dim=1, keepdim=True))
    beta = [torch.ones(n, vocab, dtype=P.dtype)]
    for i in range(length - 1, 0, -1):
        b = (seen[:, i] * beta[0]) @ P.T
        beta.insert(0, b / b.sum(dim=1, keepdim=True))
    post = torch.stack(alpha, dim=1) * torch.stack(beta, dim=1)
    return post / post.sum(dim=2, keepdim=True)


# ----------------------------------------------------------------------------- tasks
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Recipe:
    """How a refiner is trained: AdamW, optional warm-up/decay and clipping.

    ``step_weights`` None: the loss reads the last state only; else one weight per
    step, ``sum_t w_t L(h_t)`` (PNN). ``warmup`` > 0 uses PNN's schedule: linear
    warm-up over ``warmup`` steps, then linear decay to 0.1 of the peak; ``warmup`` 0
    keeps the learning rate constant.
    """

    iterations: int
    lr: float
    weight_decay: float = 0.0
    clip: float | None = None
    warmup: int = 0
    step_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.warmup < self.iterations:
            raise ValueError(f"warmup must be in 0..iterations-1={self.iterations - 1}, "
                             f"got {self.warmup}.")

    def schedule(self, step: int) -> float:
        """PNN's ``create_scheduler`` (pnn/utils/training.py), or 1 without warm-up."""
        if self.warmup == 0:
            return 1.0
        if step < self.warmup:
            return step / self.warmup
        return max(0.1, (self.iterations - step) / (self.iterations - self.warmup))


@dataclass(frozen=True)
class Task:
    """Data, model and recipe of one setting; ``batch(g)`` draws one training batch."""

    name: str
    build: Callable[[bool], Refiner]  # gated -> a fresh model (seeded by the caller)
    batch: Callable[[torch.Generator], Batch]
    test: Batch
    recipe: Recipe
    steps: int  # the depth T the models are built and trained with
    ceiling: float | None = None  # best possible test accuracy (%), where known


def spiral_task(train: int = 1_000, test: int = 2_000, steps: int = 6,
                iterations: int = 250) -> Task:
    """Chapter 9's toy: full-batch Adam (lr 0.01) on spiral points, loss on h_T only."""
    x, y = spirals(train, seed=0)
    return Task("toy (spirals)", lambda gated: ToyRefiner(steps=steps, gated=gated),
                lambda g: (x, y), spirals(test, seed=1), Recipe(iterations, lr=1e-2), steps)


def pnn_task(vocab: int = 8, successors: int = 2, length: int = 8, batch_size: int = 64,
             iterations: int = 300, lr: float = 1e-2, d: int = 32, heads: int = 4,
             ffn: int = 64, dropout: float = 0.1, test: int = 1_000) -> Task:
    """PNN's refiner and recipe, shrunk: masked tokens of a random Markov chain.

    Fresh sequences every batch, masked anew (PNN re-masks each time it reads a text);
    AdamW with weight decay 0.01, PNN's warm-up/decay schedule (warm-up 4% of the
    steps, as PNN's 500 of its ~13,000; none below 25 steps), gradient clipping at
    1.0, 4 steps weighted 0.1..0.4. The vocabulary has one more token, [MASK].
    """
    P = markov_chain(vocab, successors, seed=0)
    g = torch.Generator().manual_seed(1)
    ids, labels = mask_tokens(sample_chain(P, test, length, g), vocab, g)
    best = chain_posterior(P, ids, vocab).argmax(dim=2)
    ceiling = _accuracy(best, labels)

    def batch(g: torch.Generator) -> Batch:
        return mask_tokens(sample_chain(P, batch_size, length, g), vocab, g)

    def build(gated: bool) -> PNNRefiner:
        return PNNRefiner(vocab + 1, d, heads, ffn, length, len(PNN_STEP_WEIGHTS), gated,
                          dropout)

    recipe = Recipe(iterations, lr, weight_decay=0.01, clip=1.0,
                    warmup=iterations // 25, step_weights=PNN_STEP_WEIGHTS)
    return Task("PNN's refiner (masked Markov tokens)", build, batch, (ids, labels),
                recipe, len(PNN_STEP_WEIGHTS), ceiling)


# ----------------------------------------------------------------------------- training
def step_loss(model: Refiner, x: torch.Tensor, y: torch.Tensor,
              weights: Sequence[float] | None) -> torch.Tensor:
    """``sum_t w_t CE(head(h_t), y)`` over t = 1..T, or CE of h_T alone (weights None)."""
    if weights is None:
        return F.cross_entropy(_flat(model(x)), y.flatten(), ignore_index=IGNORE)
    if len(weights) != model.steps:
        raise ValueError(f"{len(weights)} step weights for a {model.steps}-step refiner; "
                         "give one weight per step.")
    states = model.states(x)[1:]
    return sum(w * F.cross_entropy(_flat(model.head(h)), y.flatten(), ignore_index=IGNORE)
               for w, h in zip(weights, states))


def fit(task: Task, gated: bool, seed: int) -> Refiner:
    """Train the task's plain or gated model; ``seed`` fixes init, batches and dropout."""
    torch.manual_seed(seed)
    model = task.build(gated)
    r = task.recipe
    opt = torch.optim.AdamW(model.parameters(), lr=r.lr, weight_decay=r.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, r.schedule)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(r.iterations):
        x, y = task.batch(g)
        loss = step_loss(model, x, y, r.step_weights)
        opt.zero_grad()
        loss.backward()
        if r.clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), r.clip)
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def read_steps(model: Refiner, x: torch.Tensor, y: torch.Tensor, steps: int) -> pd.DataFrame:
    """Per step t = 0..steps: test accuracy (%) of head(h_t), the RMS of h_t, and the
    RMS of the update added at step t (0 at t = 0)."""
    states = model.eval().states(x, steps)
    rows = []
    for t, h in enumerate(states):
        update = h - states[t - 1] if t else torch.zeros_like(h)
        rows.append({"steps": t, "accuracy": _accuracy(model.head(h).argmax(-1), y),
                     "state rms": _rms(h), "update rms": _rms(update)})
    return pd.DataFrame(rows)


@torch.no_grad()
def gate_means(model: Refiner, x: torch.Tensor, steps: int) -> list[float]:
    """Mean gate value g at each step 1..steps, over test inputs and coordinates."""
    with record_gates(model) as gates:
        model.eval().states(x, steps)
    (layer,) = gates.values()
    return [m.mean().item() for m in layer.m]


def compare(task: Task, seeds: Sequence[int], eval_steps: int
            ) -> tuple[pd.DataFrame, dict[tuple[str, int], Refiner]]:
    """Train plain and gated from each seed; read both at steps 0..eval_steps.

    Returns one row per (model, seed, steps) and the trained models by (kind, seed).
    """
    models, frames = {}, []
    for seed in seeds:
        for kind in ("plain", "gated"):
            model = models[(kind, seed)] = fit(task, kind == "gated", seed)
            frame = read_steps(model, *task.test, eval_steps)
            frames.append(frame.assign(model=kind, seed=seed))
    return pd.concat(frames, ignore_index=True), models


def paired_gap(curves: pd.DataFrame, steps: int, column: str = "accuracy") -> pd.Series:
    """Gated minus plain at ``steps``, one value per seed (both trained from that seed)."""
    at = curves[curves.steps == steps].pivot(index="seed", columns="model", values=column)
    return at["gated"] - at["plain"]


def spread_over_seeds(curves: pd.DataFrame, column: str = "accuracy") -> pd.DataFrame:
    """Mean, sample std, min and max over seeds, per model and step."""
    return curves.groupby(["model", "steps"])[column].agg(["mean", "std", "min", "max"])


# ----------------------------------------------------------------------------- PNN vs ours
PNN_SIZE = dict(vocab=30522, d=768, heads=12, ffn=2048, max_length=128)  # create_pnn_model


def _n(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _pnn_size_counts() -> tuple[int, int, int]:
    """Parameters of PNN's default model (gated, plain, gate), built on the meta device."""
    with torch.device("meta"):
        gated, plain = (PNNRefiner(**PNN_SIZE, gated=g) for g in (True, False))
    return _n(gated), _n(plain), _n(gated.gate)


@torch.no_grad()
def _shapes_and_sizes(task: Task, toy_task: Task) -> dict:
    """Gate input/output shapes and the RMS of delta at initialisation, both loops."""
    ours, toy = task.build(True), toy_task.build(True)
    tokens, points = task.test[0][:2], toy_task.test[0][:2]
    h0, toy_h0 = ours.embed(tokens), toy.embed(points)
    delta = ours.delta_refiner.proposal(h0)
    toy_delta = toy.U(torch.tanh(toy.V(toy_h0) + toy.inject(points)))
    return {"ours": ours, "toy": toy, "h0": h0, "g": ours.gate.gate_values(h0, delta),
            "toy_h0": toy_h0, "toy_g": toy.gate.gate_values(toy_h0, toy_delta),
            "rms": _rms(delta), "toy_rms": _rms(toy_delta)}


def pnn_comparison(task: Task, toy_task: Task, resnet_width: float) -> pd.DataFrame:
    """PNN's choices (from its source) beside ours, row by row, for chapter 9.

    Columns: PNN, :func:`pnn_task`'s refiner, :func:`spiral_task`'s toy, the first
    block's gate of ``resnet_qk`` at ``resnet_width``. Sizes, shapes, parameter counts,
    temperatures and weight statistics are read from the modules; PNN's entries cite the
    code they come from (``pnn/models/pnn.py`` unless named otherwise). The models are
    built from seed 0 without touching the global random state.
    """
    with torch.random.fork_rng():
        torch.manual_seed(0)
        rows = _comparison_rows(task, toy_task, resnet_width)
    columns = ["PNN (source)", "PNNRefiner (ours)", "ToyRefiner (ours)",
               "resnet_qk (ours)"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns)


def _comparison_rows(task: Task, toy_task: Task, resnet_width: float) -> dict:
    got = _shapes_and_sizes(task, toy_task)
    ours, toy, r = got["ours"], got["toy"], task.recipe
    block = models.build_model("resnet_qk", width=resnet_width).layer1[0].gate
    maps = torch.zeros(2, block.channels, 32, 32)
    pnn_gated, pnn_plain, pnn_gate = _pnn_size_counts()
    linear_std = torch.stack([m.weight.std() for m in ours.modules()
                              if isinstance(m, nn.Linear)]).mean().item()
    attention = ours.delta_refiner.attention
    x, _ = toy_task.batch(torch.Generator())
    return {
        "gate formula": ("σ((W_q h + b_q) ⊙ (W_k δ + b_k) / τ), QueryKeyGate.forward",
                         "same, abn.modulators.QueryKeyGate", "same",
                         "same, on pooled h and δ"),
        "gate: input → g": ("[batch, seq_len, hidden] → same shape, element-wise",
                            f"{list(got['h0'].shape)} → {list(got['g'].shape)}",
                            f"{list(got['toy_h0'].shape)} → {list(got['toy_g'].shape)}",
                            f"{list(maps.shape)} → "
                            f"{list(block.gate_values(maps, maps).shape)}"),
        "gate parameters": (f"2d² + 2d + 1 = {pnn_gate:,} at d = {PNN_SIZE['d']}",
                            f"{_n(ours.gate):,}", f"{_n(toy.gate):,}",
                            f"{_n(block):,} (first block)"),
        "τ at initialisation": ("√hidden, a tensor of shape [1]",
                                f"{ours.gate.tau.item():.2f} = √{ours.gate.channels}",
                                f"{toy.gate.tau.item():.2f}", f"{block.tau.item():.2f}"),
        "query reads": ("h, the state before the step", "same", "same", "shortcut output"),
        "δ, what the key reads": ("LN(FFN(LN(h + Attn(h)))), DeltaRefiner.forward",
                                  "same, DeltaRefiner.proposal", "U tanh(V h + X x)",
                                  "BN(conv2(…)), the residual branch"),
        "size of δ": ("set by the LayerNorm (gain 1 at initialisation)",
                      f"set by the LayerNorm: RMS {got['rms']:.2f} at initialisation",
                      f"set by U and tanh: RMS {got['toy_rms']:.2f} at initialisation",
                      "set by BatchNorm"),
        "h₀": ("Dropout(LN(token + position embeddings))", "same",
               "E x, not normalised", "–"),
        "input after h₀": ("not re-read", "not re-read", "re-injected every step (X x)",
                           "–"),
        "steps T in training": ("4 (num_steps)", f"{ours.steps}", f"{toy.steps}", "–"),
        "loss": ("Σ_t w_t CE(h_t), w = 0.1, 0.2, 0.3, 0.4 (compute_recurrent_loss)",
                 f"same, w = {', '.join(map(str, r.step_weights))}", "CE(h_T) only",
                 "CE of the logits"),
        "initialisation": ("every nn.Linear and nn.Embedding N(0, 0.02), biases 0 "
                           "(_init_weights; it runs last, so it also overwrites the "
                           "FFN's zero-init; the attention's in-projection is no "
                           "nn.Linear and keeps PyTorch's)",
                           f"same (pnn_init_): Linear weight std {linear_std:.3f} "
                           "on average", "PyTorch's default", "PyTorch's default"),
        "dropout": ("0.1 (embeddings, attention, FFN)",
                    f"{ours.embedding_dropout.p} in the same places", "none", "none"),
        "optimiser": ("AdamW lr 3e-4, weight decay 0.01, clip 1.0, 500 warm-up steps, "
                      "linear decay to 0.1× (utils/training.py), fp16 autocast",
                      f"AdamW lr {r.lr:g}, weight decay {r.weight_decay}, clip {r.clip}, "
                      f"{r.warmup} warm-up steps, linear decay to 0.1×, fp32",
                      f"Adam lr {toy_task.recipe.lr:g}, constant", "chapter 6's recipe"),
        "batch × updates": ("384 × 3 accumulated = 1,152 sequences; 15 epochs "
                            "(scripts/train.py)",
                            f"{task.batch(torch.Generator())[0].shape[0]} fresh "
                            f"sequences × {r.iterations}",
                            f"all {x.shape[0]:,} points × {toy_task.recipe.iterations}",
                            "–"),
        "data": ("WikiText-103, BERT tokens, 15% → [MASK] (data/dataset.py, MLMDataset)",
                 "random Markov chain, 15% → [MASK] (mask_tokens)", "three spiral arms",
                 "CIFAR-10"),
        "vocab / d / heads / FFN / length": (
            " / ".join(f"{PNN_SIZE[k]:,}" for k in ("vocab", "d", "heads", "ffn",
                                                      "max_length")),
            f"{ours.token_embeddings.num_embeddings} / {ours.gate.channels} / "
            f"{attention.num_heads} / {ours.delta_refiner.ffn[0].out_features} / "
            f"{ours.position_embeddings.num_embeddings}",
            f"– / {toy.gate.channels} / – / – / –", "–"),
        "parameters, gated / plain": (f"{pnn_gated:,} / {pnn_plain:,} (counted with "
                                      "PNNRefiner at PNN's size; its README: 53.7M)",
                                      f"{_n(ours):,} / {_n(task.build(False)):,}",
                                      f"{_n(toy):,} / {_n(toy_task.build(False)):,}",
                                      "chapter 8"),
    }


COLORS = {"plain": "#636efa", "gated": "#ef553b"}


def steps_figure(curves: pd.DataFrame, trained: int, title: str, column: str = "accuracy",
                 ceiling: float | None = None) -> go.Figure:
    """``column`` against the number of steps: mean over seeds and the min-to-max band,
    plain and gated, with the trained depth (and the task's ceiling) marked."""
    at = spread_over_seeds(curves, column)
    seeds = curves.seed.nunique()
    fig = go.Figure()
    for kind, color in COLORS.items():
        m = at.loc[kind]
        steps = list(m.index)
        fig.add_trace(go.Scatter(x=steps, y=m["mean"], name=f"{kind}: mean of {seeds} seeds",
                                 line=dict(color=color)))
        fig.add_trace(go.Scatter(x=steps + steps[::-1], y=list(m["max"]) + list(m["min"])[::-1],
                                 fill="toself", line=dict(width=0), fillcolor=color,
                                 opacity=0.2, name=f"{kind}: min to max", hoverinfo="skip"))
    fig.add_vline(x=trained, line_dash="dot", annotation_text=f"trained with T = {trained}")
    if ceiling is not None:
        fig.add_hline(y=ceiling, line_dash="dash", annotation_text="best possible")
    fig.update_layout(title=title, xaxis_title="refinement steps T at test time",
                      yaxis_title=column if column != "accuracy" else "test accuracy (%)",
                      height=420)
    return fig


def _flat(logits: torch.Tensor) -> torch.Tensor:
    return logits.reshape(-1, logits.shape[-1])


def _accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Percent correct over labelled positions (IGNORE skipped)."""
    keep = y != IGNORE
    return 100 * (pred[keep] == y[keep]).float().mean().item()


def _rms(h: torch.Tensor) -> float:
    return h.pow(2).mean().sqrt().item()
