"""What the gates of a trained model do: statistics, plotly figures, a live explorer.

Two layers, kept apart so that tests can check numbers and chapters can draw them:

* :func:`gate_statistics` runs a model over a set of images inside
  :func:`abn.gates.record_gates` and returns a :class:`GateStats`: per gated layer the
  modulation m (images x channels) and the bias-bank weights alpha (images x K), and
  what follows from them (class means, the entropy of alpha, a summary table, the
  channels each class turns down most). Tensors and DataFrames only, no drawing.
* The figure builders turn a :class:`GateStats` into plotly figures whose sliders and
  dropdowns work in the static book (plotly controls compute in the browser; ipywidgets
  need a kernel). :func:`explorer` is the live counterpart for Jupyter and Colab:
  ipywidgets controls redrawing a matplotlib figure.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from abn.data import CIFAR10_MEAN, CIFAR10_STD, CLASSES
from abn.gates import record_gates

LOW, HIGH = 0.5, 1.5  # a channel is "turned down" below LOW and "turned up" above HIGH
M_COLORS = "RdBu_r"  # blue: turned down, white: m = 1, red: turned up


def short_name(layer: str) -> str:
    """``layer2.1.conv2`` -> ``layer2.1``: the block a gate sits in."""
    return layer.removesuffix(".conv2")


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N x 3 x H x W) -> float32, normalised as in training."""
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Undo :func:`normalize` (for display); uint8 input is returned as it is."""
    if images.dtype == torch.uint8:
        return images
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1) * 255
    return (images.float().cpu() * std + mean).round().clamp(0, 255).to(torch.uint8)


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each row of a probability matrix; 0 log 0 = 0."""
    return -(p * p.clamp_min(1e-12).log()).sum(dim=-1)


@dataclass
class GateStats:
    """The gates of a model on a set of images (all tensors on the CPU, float32).

    ``m[layer]`` is images x channels, ``alpha[layer]`` images x K, ``class_mean[layer]``
    classes x channels (NaN for a class with no images), ``alpha_entropy[layer]`` the
    entropy of each image's alpha divided by log K (1: uniform mixing, 0: one bank entry).
    ``summary`` has one row per layer (see :func:`summarize`).
    """

    layers: list[str]
    m: dict[str, torch.Tensor]
    alpha: dict[str, torch.Tensor]
    images: torch.Tensor  # uint8, for display
    labels: torch.Tensor
    preds: torch.Tensor
    classes: tuple[str, ...]
    class_mean: dict[str, torch.Tensor]
    alpha_entropy: dict[str, torch.Tensor]
    summary: pd.DataFrame

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy (%) of the model on these images."""
        return 100.0 * (self.preds == self.labels).float().mean().item()

    def suppressed(self, k: int = 3) -> pd.DataFrame:
        """For each class and layer, the ``k`` channels whose mean m falls furthest below
        their mean over all images (the channels this class turns down most).

        Columns: class, layer, channel, class_m (mean m over the class), all_m (mean m over
        all images), diff = class_m - all_m (negative: turned down for this class).
        """
        rows = []
        for layer in self.layers:
            all_m = self.m[layer].mean(dim=0)
            diff = self.class_mean[layer] - all_m
            for c, name in enumerate(self.classes):
                if torch.isnan(diff[c]).all():
                    continue
                for ch in torch.argsort(diff[c])[:k].tolist():
                    rows.append(dict(**{"class": name}, layer=layer, channel=ch,
                                     class_m=self.class_mean[layer][c, ch].item(),
                                     all_m=all_m[ch].item(), diff=diff[c, ch].item()))
        return pd.DataFrame(rows)


def summarize(m: dict[str, torch.Tensor], alpha: dict[str, torch.Tensor]) -> pd.DataFrame:
    """One row per layer: how far m strays from 1 and how decisive alpha is.

    ``image_std`` is the standard deviation of a channel's m over images, averaged over
    channels: near 0, the gate is a fixed per-channel scale; larger, it depends on the input.
    """
    rows = []
    for layer, mm in m.items():
        a = alpha[layer]
        k = a.shape[1]
        rows.append(dict(
            layer=layer, channels=mm.shape[1], K=k,
            mean_m=mm.mean().item(), mean_abs_dev=(mm - 1).abs().mean().item(),
            share_below=(mm < LOW).float().mean().item(), share_above=(mm > HIGH).float().mean().item(),
            min_m=mm.min().item(), max_m=mm.max().item(),
            image_std=mm.std(dim=0).mean().item() if len(mm) > 1 else 0.0,
            alpha_entropy=(entropy(a) / math.log(k)).mean().item() if k > 1 else 0.0,
            alpha_max=a.max(dim=1).values.mean().item()))
    return pd.DataFrame(rows).set_index("layer")


@torch.no_grad()
def gate_statistics(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    batch_size: int = 500, classes: tuple[str, ...] = CLASSES) -> GateStats:
    """Run ``model`` (in eval mode) over ``images`` and collect what its gates did.

    ``images`` are uint8 (N x 3 x 32 x 32, normalised here as in training) or float
    tensors already normalised. The model runs on its own device, in batches; its
    training mode is restored afterwards. Recording does not change the predictions.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    preds = []
    try:
        with record_gates(model) as record:
            for start in range(0, len(images), batch_size):
                x = images[start:start + batch_size]
                x = normalize(x) if x.dtype == torch.uint8 else x.float()
                preds.append(model(x.to(device)).argmax(dim=1).cpu())
    finally:
        model.train(was_training)
    m, alpha = record.modulation(), record.weights()
    layers = list(m)
    labels = labels.cpu()
    onehot = torch.nn.functional.one_hot(labels, len(classes)).float()  # N x classes
    counts = onehot.sum(dim=0)[:, None]
    class_mean = {n: torch.where(counts > 0, onehot.T @ m[n] / counts.clamp_min(1), torch.nan) for n in layers}
    alpha_entropy = {n: entropy(a) / math.log(a.shape[1]) if a.shape[1] > 1 else torch.zeros(len(a))
                     for n, a in alpha.items()}
    return GateStats(layers, m, alpha, to_uint8(images.cpu()), labels, torch.cat(preds), tuple(classes),
                     class_mean, alpha_entropy, summarize(m, alpha))


# ---------------------------------------------------------------- plotly figures

def _json(a: torch.Tensor | np.ndarray, decimals: int = 3) -> list:
    """A rounded nested list with None for NaN: small in the HTML, valid JSON."""
    a = np.round(np.asarray(a, dtype=np.float64), decimals)
    return np.where(np.isnan(a), None, a).tolist()


def png_uri(image: torch.Tensor) -> str:
    """A uint8 image (3 x H x W) as a PNG data URI: ~3 kB instead of ~12 kB of numbers."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def modulation_matrix(stats: GateStats, index: int) -> torch.Tensor:
    """Image ``index``'s m as layers x channels, NaN-padded to the widest layer."""
    width = max(stats.m[n].shape[1] for n in stats.layers)
    out = torch.full((len(stats.layers), width), torch.nan)
    for row, n in enumerate(stats.layers):
        out[row, :stats.m[n].shape[1]] = stats.m[n][index]
    return out


def alpha_matrix(stats: GateStats, index: int) -> torch.Tensor:
    """Image ``index``'s bias-bank weights as layers x K."""
    return torch.stack([stats.alpha[n][index] for n in stats.layers])


def _image_title(stats: GateStats, i: int) -> str:
    true, pred = stats.classes[stats.labels[i]], stats.classes[stats.preds[i]]
    verdict = "correct" if true == pred else f"predicted {pred}"
    return f"Image #{i}: {true} ({verdict})"


def image_figure(stats: GateStats, indices: list[int], title_suffix: str = "") -> go.Figure:
    """One image at a time, chosen with a slider: the image, its modulation m as a
    layers x channels heatmap (blank where a layer has fewer channels), and its
    bias-bank weights alpha per layer. Keep ``indices`` short (~12-20): every step's
    data is written into the page."""
    if not indices:
        raise ValueError("image_figure needs at least one image index.")
    names = [short_name(n) for n in stats.layers]
    fig = make_subplots(rows=1, cols=3, column_widths=[0.2, 0.5, 0.3], horizontal_spacing=0.08,
                        subplot_titles=["image", "modulation m (layer × channel)", "bank weights α"])
    first = indices[0]
    # The image is a layout image, not a trace, so that one slider step can swap it
    # (a layout update) and the two heatmaps' z (a trace update) together.
    h, w = stats.images.shape[-2:]
    fig.add_layout_image(source=png_uri(stats.images[first]), xref="x", yref="y", x=0, y=h,
                         sizex=w, sizey=h, sizing="stretch", layer="below")
    fig.add_trace(go.Heatmap(
        z=_json(modulation_matrix(stats, first)), y=names, zmin=0, zmax=2, zmid=1, colorscale=M_COLORS,
        colorbar=dict(title="m", len=0.9), hovertemplate="%{y}, channel %{x}: m = %{z:.2f}<extra></extra>"),
        1, 2)
    k = stats.alpha[stats.layers[0]].shape[1]
    fig.add_trace(go.Heatmap(
        z=_json(alpha_matrix(stats, first), 2), y=names, x=[f"α{j + 1}" for j in range(k)], zmin=0, zmax=1,
        colorscale="Greens", showscale=False, texttemplate="%{z:.2f}", textfont_size=10,
        hovertemplate="%{y}, %{x} = %{z:.2f}<extra></extra>"), 1, 3)
    steps = [dict(method="update", label=str(i),
                  args=[{"z": [_json(modulation_matrix(stats, i)), _json(alpha_matrix(stats, i), 2)]},
                        {"title.text": _image_title(stats, i) + title_suffix,
                         "images[0].source": png_uri(stats.images[i])}])
             for i in indices]
    fig.update_yaxes(autorange="reversed", col=2)
    fig.update_yaxes(autorange="reversed", showticklabels=False, col=3)
    fig.update_xaxes(title_text="channel", col=2)
    fig.update_xaxes(range=[0, w], visible=False, constrain="domain", col=1)
    fig.update_yaxes(range=[0, h], visible=False, scaleanchor="x", constrain="domain", col=1)
    fig.update_layout(
        title=_image_title(stats, first) + title_suffix, height=460, margin=dict(t=80, b=90, l=60, r=20),
        sliders=[dict(steps=steps, active=0, currentvalue=dict(prefix="image #"), pad=dict(t=40))])
    return fig


def class_figure(stats: GateStats) -> go.Figure:
    """Mean m of each class (classes x channels), one layer at a time (dropdown); each
    layer also as the difference from its mean over all images, where class-specific
    turning down and up shows best."""
    traces, labels = [], []
    for n in stats.layers:
        cm = stats.class_mean[n]
        diff = cm - stats.m[n].mean(dim=0)
        span = max(float(torch.nan_to_num(diff).abs().max()), 1e-3)
        traces.append(go.Heatmap(z=_json(cm), y=list(stats.classes), zmin=0, zmax=2, zmid=1,
                                 colorscale=M_COLORS, colorbar=dict(title="mean m"),
                                 hovertemplate="%{y}, channel %{x}: mean m = %{z:.3f}<extra></extra>"))
        labels.append((f"{short_name(n)}: mean m", f"Mean modulation per class, {short_name(n)}"))
        traces.append(go.Heatmap(z=_json(diff), y=list(stats.classes), zmin=-span, zmax=span, zmid=0,
                                 colorscale=M_COLORS, colorbar=dict(title="difference"),
                                 hovertemplate="%{y}, channel %{x}: %{z:+.3f}<extra></extra>"))
        labels.append((f"{short_name(n)}: minus all-image mean",
                       f"Class mean m minus the mean over all images, {short_name(n)}"))
    fig = go.Figure(traces)
    for j, t in enumerate(fig.data):
        t.visible = j == 0
    buttons = [dict(label=label, method="update",
                    args=[{"visible": [j == i for j in range(len(traces))]}, {"title.text": title}])
               for i, (label, title) in enumerate(labels)]
    fig.update_layout(title=labels[0][1], height=430, xaxis_title="channel",
                      yaxis=dict(autorange="reversed"), margin=dict(t=140),
                      updatemenus=[dict(type="dropdown", buttons=buttons, active=0,
                                        x=0, xanchor="left", y=1.03, yanchor="bottom")])
    return fig


def distribution_figure(stats: GateStats, bins: int = 40) -> go.Figure:
    """How far m strays from 1: its histogram per layer (all images and channels), and the
    share of values below LOW (turned down) and above HIGH (turned up) per layer."""
    names = [short_name(n) for n in stats.layers]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.1,
                        subplot_titles=["distribution of m", f"share of m < {LOW} and > {HIGH}"])
    edges = torch.linspace(0, 2, bins + 1)
    centres = ((edges[1:] + edges[:-1]) / 2).tolist()
    for n, name in zip(stats.layers, names):
        hist = torch.histc(stats.m[n].flatten(), bins=bins, min=0, max=2)
        fig.add_scatter(x=centres, y=_json(100 * hist / hist.sum(), 2), mode="lines", name=name,
                        line_shape="hvh", row=1, col=1)
    for x in (LOW, 1.0, HIGH):
        fig.add_vline(x=x, line=dict(color="grey", width=1, dash="dot"), row=1, col=1)
    s = stats.summary
    fig.add_bar(x=names, y=_json(100 * s["share_below"], 2), name=f"m < {LOW}", marker_color="#2166ac",
                row=1, col=2)
    fig.add_bar(x=names, y=_json(100 * s["share_above"], 2), name=f"m > {HIGH}", marker_color="#b2182b",
                row=1, col=2)
    fig.update_xaxes(title_text="m", range=[0, 2], row=1, col=1)
    fig.update_yaxes(title_text="% of values", row=1, col=1)
    fig.update_yaxes(title_text="% of values", row=1, col=2)
    fig.update_layout(height=400, barmode="group", title="How far the modulation strays from 1")
    return fig


def entropy_figure(stats: GateStats) -> go.Figure:
    """How decisive the bias-bank weights are, per layer: the entropy of alpha divided by
    log K (1: uniform mixing; 0: one bank entry), and the largest weight, as means over
    images with 10th-90th percentile bars."""
    names = [short_name(n) for n in stats.layers]
    fig = go.Figure()
    for label, values in (("entropy of α / log K", stats.alpha_entropy),
                          ("largest α", {n: a.max(dim=1).values for n, a in stats.alpha.items()})):
        v = [values[n] for n in stats.layers]
        mean = torch.stack([x.mean() for x in v])
        q = torch.stack([torch.quantile(x, torch.tensor([0.1, 0.9])) for x in v])
        fig.add_bar(x=names, y=_json(mean), name=label,
                    error_y=dict(type="data", symmetric=False, array=_json(q[:, 1] - mean),
                                 arrayminus=_json(mean - q[:, 0])))
    k = stats.alpha[stats.layers[0]].shape[1]
    fig.add_hline(y=1 / k, line=dict(color="grey", dash="dot"), annotation_text=f"1/K = {1 / k:.2f}")
    fig.update_layout(barmode="group", height=380, yaxis=dict(range=[0, 1.05]),
                      title="How decisive the bias-bank weights α are (bars: 10th to 90th percentile)")
    return fig


def suppressed_figure(stats: GateStats, k: int = 3) -> go.Figure:
    """For one class at a time (dropdown): in each layer, the ``k`` channels it turns down
    most relative to all images; bars are the class's mean m, diamonds the all-image mean."""
    table = stats.suppressed(k)
    present = [c for c in stats.classes if c in set(table["class"])]
    fig = go.Figure()
    for c in present:
        rows = table[table["class"] == c]
        # a two-level axis: the layer below, the channel above
        x = [[short_name(n) for n in rows["layer"]], [f"ch {ch}" for ch in rows["channel"]]]
        fig.add_bar(x=x, y=_json(rows["class_m"]), name=f"mean m, {c}", marker_color="#2166ac",
                    visible=c == present[0])
        fig.add_scatter(x=x, y=_json(rows["all_m"]), mode="markers", name="mean m, all images",
                        marker=dict(symbol="diamond", size=10, color="black"), visible=c == present[0])
    buttons = [dict(label=c, method="update",
                    args=[{"visible": [j // 2 == i for j in range(2 * len(present))]},
                          {"title.text": f"Channels that {c} images turn down most"}])
               for i, c in enumerate(present)]
    fig.add_hline(y=1, line=dict(color="grey", dash="dot"))
    fig.update_layout(title=f"Channels that {present[0]} images turn down most", height=440,
                      yaxis=dict(title="mean m", range=[0, 2]), margin=dict(t=140),
                      legend=dict(orientation="h", y=-0.3),
                      updatemenus=[dict(type="dropdown", buttons=buttons, active=0,
                                        x=0, xanchor="left", y=1.03, yanchor="bottom")])
    return fig


# ---------------------------------------------------------------- live explorer

STATISTICS = ("m of this image", "α of this image", "class means of m", "distribution of m")


def pick_image(stats: GateStats, cls: str, n: int) -> int:
    """Index of the ``n``-th image (wrapping around) of class ``cls`` ("any": of all)."""
    pool = (torch.arange(len(stats.labels)) if cls == "any"
            else (stats.labels == stats.classes.index(cls)).nonzero().flatten())
    if len(pool) == 0:
        raise ValueError(f"no image of class {cls!r} among these {len(stats.labels)} images.")
    return int(pool[n % len(pool)])


def live_view(stats: GateStats, index: int, layer: str, statistic: str = STATISTICS[0]):
    """A matplotlib figure: image ``index`` beside one ``statistic`` of ``layer``."""
    import matplotlib.pyplot as plt

    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}.")
    fig, (ax_img, ax) = plt.subplots(1, 2, figsize=(10, 3.4), width_ratios=[1, 3.2])
    ax_img.imshow(stats.images[index].permute(1, 2, 0).numpy())
    ax_img.set_title(_image_title(stats, index), fontsize=9)
    ax_img.axis("off")
    m, cls = stats.m[layer], int(stats.labels[index])
    name = short_name(layer)
    if statistic == "m of this image":
        ch = np.arange(m.shape[1])
        ax.bar(ch, m[index].numpy(), color="#2166ac", label="this image")
        ax.step(ch, stats.class_mean[layer][cls].numpy(), where="mid", color="black",
                label=f"mean over {stats.classes[cls]}")
        ax.axhline(1, color="grey", ls=":")
        ax.set(ylim=(0, 2), xlabel="channel", ylabel="m", title=f"{name}: modulation m")
        ax.legend(fontsize=8)
    elif statistic == "α of this image":
        a, k = stats.alpha[layer], stats.alpha[layer].shape[1]
        ax.bar(np.arange(k), a[index].numpy(), color="#1b7837", label="this image")
        ax.plot(np.arange(k), a[stats.labels == cls].mean(dim=0).numpy(), "kD",
                label=f"mean over {stats.classes[cls]}")
        ax.set(ylim=(0, 1), xticks=range(k), xticklabels=[f"α{j + 1}" for j in range(k)],
               title=f"{name}: bias-bank weights α")
        ax.legend(fontsize=8)
    elif statistic == "class means of m":
        im = ax.imshow(stats.class_mean[layer].numpy(), cmap="RdBu_r", vmin=0, vmax=2, aspect="auto")
        ax.set(yticks=range(len(stats.classes)), yticklabels=stats.classes, xlabel="channel",
               title=f"{name}: mean m per class")
        fig.colorbar(im, ax=ax)
    else:
        ax.hist(m.flatten().numpy(), bins=40, range=(0, 2), color="grey", label="all images")
        for v in m[index].numpy():
            ax.axvline(v, color="#b2182b", lw=0.8)
        for x in (LOW, HIGH):
            ax.axvline(x, color="black", ls=":")
        ax.set(xlabel="m", title=f"{name}: m of all images (grey), of this image (red lines)")
    fig.tight_layout()
    return fig


def explorer(stats: GateStats):
    """ipywidgets controls (class, n-th image of it, layer, statistic) redrawing
    :func:`live_view`. Needs a kernel to respond; in the static book it shows its
    first picture only."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(cls: str, n: int, layer: str, statistic: str) -> None:
        live_view(stats, pick_image(stats, cls, n), layer, statistic)
        plt.show()

    wide = {"description_width": "initial"}
    return widgets.interactive(
        show,
        cls=widgets.Dropdown(options=["any", *stats.classes], value="any", description="class"),
        n=widgets.IntSlider(value=0, min=0, max=min(len(stats.labels), 200) - 1,
                            description="n-th image", style=wide),
        layer=widgets.Dropdown(options=[(short_name(n), n) for n in stats.layers], description="layer"),
        statistic=widgets.Dropdown(options=STATISTICS, description="statistic"),
    )
