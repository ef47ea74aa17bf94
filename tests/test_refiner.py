"""abn.refiner: PNN's refiner as its source builds it, the toy loop, data, training, reading.

PNN facts checked here come from madst0614/plastic-neural-networks, pnn/models/pnn.py
(PlasticNeuralNetwork, DeltaRefiner, QueryKeyGate/DeltaValidator), pnn/data/dataset.py
(MLMDataset) and pnn/utils/training.py (create_scheduler).
"""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from abn import refiner as r
from abn.models import count_parameters as n_params
from abn.modulators import QueryKeyGate


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models (conftest.py)


def pnn_count(vocab: int, d: int, ffn: int, length: int, gated: bool = True) -> int:
    """PlasticNeuralNetwork's parameters by formula, layer by layer."""
    embeddings = vocab * d + length * d + 2 * d  # token, position, LayerNorm
    attention = 4 * d * d + 4 * d + 2 * d  # in/out projections, LayerNorm
    ffn_block = d * ffn + ffn + ffn * d + d + 2 * d  # two Linear layers, LayerNorm
    gate = 2 * d * d + 2 * d + 1 if gated else 0
    return embeddings + attention + ffn_block + gate + d * vocab + vocab  # + mlm_head


def test_parameter_count_at_pnns_size():
    """PNN's default configuration (vocab 30522, d 768, 12 heads, FFN 2048, 128 tokens):
    53.7M parameters, the figure PNN's README reports. Built on the meta device."""
    with torch.device("meta"):
        gated = r.PNNRefiner(30522, 768, 12, 2048, 128)
        plain = r.PNNRefiner(30522, 768, 12, 2048, 128, gated=False)
    assert n_params(gated) == pnn_count(30522, 768, 2048, 128)
    assert round(n_params(gated) / 1e6, 1) == 53.7  # PNN README: "53.7M parameters"
    assert n_params(gated) - n_params(plain) == 2 * 768**2 + 2 * 768 + 1


def test_pnn_init():
    """Every nn.Linear (the gate's and the attention's out-projection too) and Embedding
    N(0, 0.02), biases 0, LayerNorm 1/0, tau sqrt(d); the FFN's last layer is not zero
    (PNN's zero-init is overwritten by its _init_weights)."""
    torch.manual_seed(0)
    model = r.PNNRefiner(vocab=300, d=64, ffn=128)
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding))]
    assert len(weights) == 2 + 1 + 2 + 2 + 1  # embeddings, out_proj, ffn, gate, head
    for w in weights:
        assert abs(w.std().item() - 0.02) < 0.003 and abs(w.mean().item()) < 0.003
    for m in model.modules():
        if isinstance(m, nn.Linear):
            assert torch.count_nonzero(m.bias) == 0
        if isinstance(m, nn.LayerNorm):
            assert torch.all(m.weight == 1) and torch.count_nonzero(m.bias) == 0
    assert model.gate.tau.item() == pytest.approx(8.0)
    assert model.delta_refiner.ffn[3].weight.abs().sum() > 0


def test_pnn_refiner_states_and_update():
    """h0 is layer-normalised; the input is not re-read; delta_raw has the LayerNorm's size
    whatever the size of h; the gated update is g * delta_raw, element-wise."""
    torch.manual_seed(0)
    model = r.PNNRefiner(vocab=9, max_length=8).eval()
    x = torch.randint(0, 9, (3, 8))
    states = model.states(x, steps=6)
    assert len(states) == 7 and all(h.shape == (3, 8, 32) for h in states)
    torch.testing.assert_close(states[0].mean(-1), torch.zeros(3, 8), atol=1e-5, rtol=0)
    var = states[0].var(-1, unbiased=False)  # just below 1: LayerNorm's eps is 1e-5
    assert torch.all((var > 0.95) & (var <= 1))  # and N(0, 0.02) embeddings are small
    h = torch.randn(3, 8, 32)
    torch.testing.assert_close(model.update(h, x), model.update(h, torch.zeros_like(x)))
    for scale in (1.0, 1e2, 1e4):  # the LayerNorm's gain is 1 at init, its eps 1e-5
        rms = model.delta_refiner.proposal(scale * h).pow(2).mean(-1).sqrt()
        assert torch.all((rms > 0.9) & (rms <= 1))
    refiner = model.delta_refiner
    want = refiner.gate.gate_values(h, refiner.proposal(h)) * refiner.proposal(h)
    torch.testing.assert_close(refiner(h), want)
    plain = r.PNNRefiner(vocab=9, max_length=8, gated=False).eval()
    assert plain.gate is None
    torch.testing.assert_close(plain.delta_refiner(h), plain.delta_refiner.proposal(h))


def test_toy_refiner_rereads_the_input():
    torch.manual_seed(0)
    toy = r.ToyRefiner(d=8, steps=3)
    x, h = torch.randn(4, 2), torch.randn(4, 8)
    assert not torch.allclose(toy.update(h, x), toy.update(h, x + 1))
    assert isinstance(toy.gate, QueryKeyGate) and r.ToyRefiner(gated=False).gate is None
    assert toy(x).shape == (4, 3) and len(toy.states(x, 10)) == 11


def test_step_loss_is_pnns_weighted_sum():
    torch.manual_seed(0)
    model = r.PNNRefiner(vocab=9, max_length=8).eval()
    g = torch.Generator().manual_seed(0)
    x, y = r.mask_tokens(torch.randint(0, 8, (4, 8)), 8, g, p=0.5)
    states = model.states(x)[1:]
    want = sum(w * F.cross_entropy(model.head(h).reshape(-1, 9), y.flatten(), ignore_index=-100)
               for w, h in zip((0.1, 0.2, 0.3, 0.4), states))
    torch.testing.assert_close(r.step_loss(model, x, y, r.PNN_STEP_WEIGHTS), want)
    last = F.cross_entropy(model.head(states[-1]).reshape(-1, 9), y.flatten(), ignore_index=-100)
    torch.testing.assert_close(r.step_loss(model, x, y, None), last)
    with pytest.raises(ValueError, match="3 step weights for a 4-step refiner"):
        r.step_loss(model, x, y, (0.2, 0.3, 0.5))


def test_schedule_is_pnns():
    """create_scheduler: step / warmup, then max(0.1, (total - step) / (total - warmup))."""
    recipe = r.Recipe(iterations=100, lr=1.0, warmup=10)
    assert [recipe.schedule(s) for s in (0, 5, 10, 55, 91, 99)] == [0, 0.5, 1, 0.5, 0.1, 0.1]
    assert r.Recipe(iterations=100, lr=1.0).schedule(50) == 1


def test_mask_tokens_follows_mlm_dataset():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 8, (200, 50))
    ids, labels = r.mask_tokens(x, 8, g)
    masked = ids == 8
    assert abs(masked.float().mean().item() - 0.15) < 0.01
    assert torch.equal(labels[masked], x[masked]) and torch.all(labels[~masked] == r.IGNORE)
    assert torch.equal(ids[~masked], x[~masked])


def test_markov_chain_and_samples():
    P = r.markov_chain(6, 2, seed=0)
    torch.testing.assert_close(P.sum(1), torch.ones(6))
    assert torch.all((P > 0).sum(1) == 2)
    x = r.sample_chain(P, 300, 10, torch.Generator().manual_seed(0))
    assert torch.all(P[x[:, :-1], x[:, 1:]] > 0)  # only allowed transitions
    with pytest.raises(ValueError, match="successors"):
        r.markov_chain(6, 7, seed=0)


def test_chain_posterior_equals_enumeration():
    """Forward-backward against summing p(sequence) over every completion."""
    P = r.markov_chain(3, 2, seed=1).double()
    ids = torch.tensor([[3, 0, 3, 3, 1], [2, 3, 3, 1, 3]])  # 3 = [MASK]
    post = r.chain_posterior(P, ids, mask_id=3)
    for row, seq in enumerate(ids.tolist()):
        want = torch.zeros(5, 3, dtype=torch.float64)
        for tokens in itertools.product(range(3), repeat=5):
            if any(s != 3 and s != t for s, t in zip(seq, tokens)):
                continue
            p = math.prod(P[a, b].item() for a, b in zip(tokens, tokens[1:])) / 3
            for i, t in enumerate(tokens):
                want[i, t] += p
        torch.testing.assert_close(post[row], want / want.sum(1, keepdim=True))


def tiny_pnn_task(iterations: int = 40) -> r.Task:
    return r.pnn_task(vocab=5, length=6, batch_size=16, iterations=iterations, d=16, heads=2,
                      ffn=32, test=64)


def test_compare_is_seeded_and_reads_every_step():
    task = tiny_pnn_task(iterations=3)
    curves, models = r.compare(task, seeds=(0, 1), eval_steps=6)
    assert len(curves) == 2 * 2 * 7 and set(models) == {(k, s) for k in ("plain", "gated")
                                                       for s in (0, 1)}
    again, _ = r.compare(task, seeds=(0,), eval_steps=6)
    first = curves[curves.seed == 0].drop(columns="seed").reset_index(drop=True)
    assert first.equals(again.drop(columns="seed"))
    assert (curves[curves.steps == 0]["update rms"] == 0).all()
    gap = r.paired_gap(curves, 4)
    assert list(gap.index) == [0, 1]
    at4 = curves[curves.steps == 4].set_index(["model", "seed"])["accuracy"]
    assert gap[1] == pytest.approx(at4[("gated", 1)] - at4[("plain", 1)])
    summary = r.spread_over_seeds(curves)
    assert list(summary.columns) == ["mean", "std", "min", "max"]


def test_training_learns_the_tiny_task():
    """40 steps move the gated refiner's step-4 accuracy above the embedding's (step 0),
    and its weighted loss down; the ceiling is above both."""
    task = tiny_pnn_task()
    torch.manual_seed(0)
    before = r.step_loss(task.build(True).eval(), *task.test, r.PNN_STEP_WEIGHTS)
    model = r.fit(task, gated=True, seed=0)
    after = r.step_loss(model, *task.test, r.PNN_STEP_WEIGHTS)
    read = r.read_steps(model, *task.test, steps=4).set_index("steps")["accuracy"]
    assert after < before and read[4] > read[0]
    assert task.ceiling >= read[4]


def test_gate_means_per_step():
    task = tiny_pnn_task(iterations=2)
    model = r.fit(task, gated=True, seed=0)
    means = r.gate_means(model, task.test[0], steps=7)
    assert len(means) == 7 and all(0 < m < 1 for m in means)
    toy = r.ToyRefiner(steps=2)
    assert len(r.gate_means(toy, torch.randn(5, 2), steps=3)) == 3


def test_spiral_task_is_the_old_toy():
    """The chapter's first setting: full-batch Adam on spirals, last-step loss only."""
    task = r.spiral_task(iterations=2)
    x, y = task.batch(torch.Generator())
    assert x.shape == (1000, 2) and task.test[0].shape == (2000, 2) and y.max() == 2
    assert task.recipe.step_weights is None and task.recipe.weight_decay == 0
    assert isinstance(r.fit(task, gated=False, seed=0), r.ToyRefiner)


def test_steps_figure_draws_both_models():
    curves, _ = r.compare(tiny_pnn_task(iterations=1), seeds=(0, 1), eval_steps=3)
    fig = r.steps_figure(curves, trained=2, title="t", ceiling=50.0)
    assert [t.name for t in fig.data] == ["plain: mean of 2 seeds", "plain: min to max",
                                          "gated: mean of 2 seeds", "gated: min to max"]
    assert list(fig.data[0].x) == [0, 1, 2, 3]
    rms = r.steps_figure(curves, trained=2, title="t", column="state rms")
    assert rms.layout.yaxis.title.text == "state rms"


def test_recipe_rejects_a_warmup_longer_than_training():
    with pytest.raises(ValueError, match="warmup must be in 0..iterations-1=9"):
        r.Recipe(iterations=10, lr=1.0, warmup=10)


def test_pnn_comparison_reads_the_modules():
    """The table's computed cells match the modules; the global random state is kept."""
    task, toy_task = tiny_pnn_task(), r.spiral_task()
    state = torch.random.get_rng_state()
    table = r.pnn_comparison(task, toy_task, resnet_width=0.125)
    assert torch.equal(state, torch.random.get_rng_state())
    assert list(table.columns) == ["PNN (source)", "PNNRefiner (ours)", "ToyRefiner (ours)",
                                   "resnet_qk (ours)"]
    row = table.loc["gate: input → g"]
    assert row["PNNRefiner (ours)"] == "[2, 6, 16] → [2, 6, 16]"  # element-wise, per token
    assert row["resnet_qk (ours)"] == "[2, 8, 32, 32] → [2, 8]"  # pooled channels
    assert table.loc["gate parameters", "PNN (source)"].endswith("1,181,185 at d = 768")
    assert table.loc["gate parameters", "PNNRefiner (ours)"] == f"{2 * 16 * 16 + 2 * 16 + 1}"
    gated, plain = task.build(True), task.build(False)
    assert table.loc["parameters, gated / plain", "PNNRefiner (ours)"] == (
        f"{n_params(gated):,} / {n_params(plain):,}")
    assert table.loc["steps T in training"].tolist()[1:3] == ["4", "6"]
    pnn = table.loc["parameters, gated / plain", "PNN (source)"]
    assert pnn.startswith(f"{pnn_count(30522, 768, 2048, 128):,} / ")
