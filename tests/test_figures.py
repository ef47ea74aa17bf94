"""Gate statistics and figures of a really (if briefly) trained ResNet-DMB; checkpoints.

One tiny model is trained per module (width 0.125, 1,000 images, one epoch: seconds on
CPU), so the numbers come from a network whose gates have moved, not from a fresh one.
"""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from abn import checkpoints, figures  # noqa: E402
from abn.data import normalize  # noqa: E402
from abn.gate_stats import HIGH, LOW, gate_statistics  # noqa: E402
from abn.gates import gated_layers  # noqa: E402
from abn.train import TrainConfig, train  # noqa: E402

TINY = TrainConfig(model="resnet_dmb", width=0.125, epochs=1, train_subset=1000, val_size=0,
                   test_subset=500, profile="quick")


@pytest.fixture(scope="module")
def run():
    return train(TINY, progress=False)


@pytest.fixture(scope="module")
def data(run):
    return run.test_loader.images.cpu(), run.test_loader.labels.cpu()


@pytest.fixture(scope="module")
def stats(run, data):
    return gate_statistics(run.model, *data, batch_size=200)


def test_shapes_and_ranges(run, stats, data):
    layers = list(gated_layers(run.model))
    assert stats.layers == layers and len(layers) == 6
    n = len(data[1])
    for name in stats.layers:
        m, a = stats.m[name], stats.alpha[name]
        channels = run.model.get_submodule(name).out_channels
        assert m.shape == (n, channels) and a.shape == (n, 4)
        assert ((m > 0) & (m < 2)).all()
        torch.testing.assert_close(a.sum(dim=1), torch.ones(n))
        assert stats.class_mean[name].shape == (10, channels)
        h = stats.alpha_entropy[name]
        assert h.shape == (n,) and ((h >= 0) & (h <= 1 + 1e-6)).all()
    assert list(stats.summary.index) == stats.layers
    assert stats.images.dtype == torch.uint8 and stats.images.shape == (n, 3, 32, 32)


def test_summary_and_class_means_are_what_they_say(stats):
    name = stats.layers[2]
    m, row = stats.m[name], stats.summary.loc[name]
    assert row["share_below"] == pytest.approx((m < LOW).float().mean().item())
    assert row["share_above"] == pytest.approx((m > HIGH).float().mean().item())
    assert row["mean_abs_dev"] == pytest.approx((m - 1).abs().mean().item(), rel=1e-5)
    cats = stats.labels == 3
    torch.testing.assert_close(stats.class_mean[name][3], m[cats].mean(dim=0))
    a = stats.alpha[name]
    expected = (-(a * a.log()).sum(dim=1) / math.log(4)).mean().item()
    assert row["alpha_entropy"] == pytest.approx(expected, rel=1e-4)


def test_recorder_leaves_predictions_unchanged(run, stats, data):
    images, labels = data
    run.model.train()  # gate_statistics evaluates in eval mode and restores the mode
    with torch.no_grad():
        plain = torch.cat([run.model.eval()(normalize(images[i:i + 200])).argmax(dim=1)
                           for i in range(0, len(images), 200)])
    run.model.train()
    again = gate_statistics(run.model, images[:50], labels[:50], batch_size=20)
    assert run.model.training
    assert torch.equal(stats.preds, plain)
    assert torch.equal(again.preds, plain[:50])
    torch.testing.assert_close(again.m[stats.layers[0]], stats.m[stats.layers[0]][:50])
    assert stats.accuracy == pytest.approx(100 * (plain == labels).float().mean().item())


def test_normalised_float_images_give_the_same_statistics(run, stats, data):
    images, labels = data
    floats = gate_statistics(run.model, normalize(images[:40]), labels[:40])
    torch.testing.assert_close(floats.m[stats.layers[-1]], stats.m[stats.layers[-1]][:40])
    assert torch.equal(floats.images, images[:40])  # denormalised back for display


def test_suppressed_channels(stats):
    table = stats.suppressed(k=3)
    assert len(table) == 10 * len(stats.layers) * 3
    for (cls, layer), rows in table.groupby(["class", "layer"]):
        c = stats.classes.index(cls)
        diff = stats.class_mean[layer][c] - stats.m[layer].mean(dim=0)
        assert list(rows["channel"]) == torch.argsort(diff)[:3].tolist()
        assert ((rows["diff"] - (rows["class_m"] - rows["all_m"])).abs() < 1e-6).all()
        assert rows["diff"].is_monotonic_increasing


def test_image_figure(stats):
    indices = list(range(12))
    fig = figures.image_figure(stats, indices)
    heat, alpha = fig.data
    width = max(stats.m[n].shape[1] for n in stats.layers)
    assert (len(heat.z), len(heat.z[0])) == (6, width)
    assert heat.z[0][-1] is None  # layer1 has 8 channels: padded
    first_labels = fig.layout.sliders[0].steps[0].args[0]["text"][1]
    assert alpha.texttemplate == "%{text}" and [list(r) for r in alpha.text] == first_labels
    steps = fig.layout.sliders[0].steps
    assert len(steps) == 12
    for i, step in zip(indices, steps):
        z, a = step.args[0]["z"]
        expected = figures.modulation_matrix(stats, i)
        got = torch.tensor([[math.nan if v is None else v for v in row] for row in z])
        torch.testing.assert_close(got, expected, atol=1e-3, rtol=0, equal_nan=True)
        assert all(abs(sum(row) - 1) < 0.03 for row in a)
        labels = step.args[0]["text"][1]  # alpha's cells: whole percentages, as on a phone
        assert labels == [[str(round(100 * v)) for v in row]
                          for row in figures.alpha_matrix(stats, i).tolist()]
        assert max(len(label) for row in labels for label in row) <= 3
        assert step.args[1]["images[0].source"].startswith("data:image/png;base64,")
    assert steps[0].args[1] != steps[1].args[1]
    # labelled by position and class, not by test-set index: "Image 3 of 12: cat (correct)"
    assert [s.label for s in steps] == [str(k + 1) for k in range(12)]
    third = steps[2].args[1]
    assert third["title.text"].startswith(f"Image 3 of 12: {stats.classes[stats.labels[2]]} (")
    assert third["annotations[0].text"] == "test #2"
    assert fig.layout.title.text == steps[0].args[1]["title.text"]
    with pytest.raises(ValueError):
        figures.image_figure(stats, [])


def test_class_figure(stats):
    fig = figures.class_figure(stats)
    assert len(fig.data) == 2 * len(stats.layers)
    buttons = fig.layout.updatemenus[0].buttons
    assert len(buttons) == len(fig.data)
    assert all(sum(b.args[0]["visible"]) == 1 for b in buttons)
    assert [t.visible for t in fig.data].count(True) == 1
    torch.testing.assert_close(torch.tensor(fig.data[0].z), stats.class_mean[stats.layers[0]],
                               atol=1e-3, rtol=0)
    assert len(fig.data[1].z) == 10


def test_distribution_figure(stats):
    fig = figures.distribution_figure(stats)
    lines = [t for t in fig.data if t.type == "scatter"]
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(lines) == len(stats.layers) and len(bars) == 2
    assert all(sum(t.y) == pytest.approx(100, abs=0.5) for t in lines)
    assert list(bars[0].y) == pytest.approx(list(100 * stats.summary["share_below"]), abs=0.01)


def test_entropy_figure(stats):
    fig = figures.entropy_figure(stats)
    assert len(fig.data) == 2
    assert all(0 <= v <= 1 for t in fig.data for v in t.y)
    assert list(fig.data[0].y) == pytest.approx(list(stats.summary["alpha_entropy"]), abs=1e-3)


def test_suppressed_figure(stats):
    fig = figures.suppressed_figure(stats, k=2)
    assert len(fig.data) == 20 and len(fig.layout.updatemenus[0].buttons) == 10
    layers, channels = fig.data[0].x  # a two-level axis: layer, channel
    assert len(layers) == len(channels) == 2 * len(stats.layers)


def test_live_view_and_explorer(stats):
    for statistic in figures.STATISTICS:
        fig = figures.live_view(stats, 5, stats.layers[3], statistic)
        assert len(fig.axes) >= 2
        plt.close(fig)
    with pytest.raises(ValueError, match="statistic"):
        figures.live_view(stats, 0, stats.layers[0], "nonsense")
    i = figures.pick_image(stats, "cat", 2)
    assert stats.labels[i] == 3 and (stats.labels[:i] == 3).sum() == 2
    assert figures.pick_image(stats, "any", 7) == 7
    widget = figures.explorer(stats)
    assert [c.description for c in widget.children[:4]] == ["class", "n-th image", "layer", "statistic"]
    plt.close("all")


def test_checkpoint_roundtrip(run, data, tmp_path):
    path = checkpoints.save_trained(run, checkpoints.checkpoint_path(tmp_path))
    assert path.name == "resnet_dmb_seed0.pt"
    model, prov = checkpoints.load_trained_dmb(tmp_path)
    saved = torch.load(path, weights_only=True)
    assert all(v.dtype == torch.float16 for v in saved["state_dict"].values() if v.is_floating_point())
    assert prov["final_test_acc"] == run.result["final_test_acc"] and prov["torch"] == torch.__version__
    assert prov["config"]["width"] == 0.125 and not model.training
    x = normalize(data[0][:64])
    with torch.no_grad():
        ref = run.model.eval()(x)
        # fp16 weights: logits agree closely, predictions almost always
        assert (model(x) - ref).abs().max() < 0.05 * ref.abs().max()
        assert (model(x).argmax(1) == ref.argmax(1)).float().mean() > 0.9
    assert checkpoints.load_trained_dmb(tmp_path / "none") is None
    with pytest.raises(ValueError, match="limit"):
        checkpoints.save_trained(run, tmp_path / "big.pt", max_bytes=1000)
    assert not (tmp_path / "big.pt").exists()


def test_block_diagram_is_valid_svg_that_names_bn2():
    import xml.etree.ElementTree as ET

    for highlight in ("all", "dmb", "after"):
        html = figures.block_diagram(highlight)
        root = ET.fromstring(html)  # well-formed: a div holding one svg
        svg = root[0]
        assert svg.tag.endswith("svg") and svg.get("viewBox") == "0 0 360 408"
        text = " ".join(t for t in root.itertext())
        assert "bn2" in text and "× m" in text and "× g" in text
    with pytest.raises(ValueError, match="highlight"):
        figures.block_diagram("se")


def test_cv_figure_has_one_box_per_layer_with_the_cv(stats):
    from abn.gate_stats import across_image_cv

    fig = figures.cv_figure(stats)
    assert len(fig.data) == len(stats.layers)
    first = stats.layers[0]
    assert list(fig.data[0].y) == pytest.approx(across_image_cv(stats.m[first]).tolist(), abs=1e-4)
