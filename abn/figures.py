"""Drawing only: the figures and tables the chapters show, from numbers computed elsewhere.

* Gates: the builders turn a :class:`abn.gate_stats.GateStats` into plotly figures whose
  sliders and dropdowns work in the static book (plotly controls compute in the browser;
  ipywidgets need a kernel). :func:`explorer` is the live counterpart for Jupyter and
  Colab: ipywidgets controls redrawing a matplotlib figure.
* Results over seeds (:mod:`abn.stats`): :func:`seed_plot` and :func:`styled_table`.
"""

from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from abn.gate_stats import HIGH, LOW, GateStats
from abn.stats import group_runs

M_COLORS = "RdBu_r"  # blue: turned down, white: m = 1, red: turned up


def short_name(layer: str) -> str:
    """``layer2.1.conv2`` -> ``layer2.1``: the block a gate sits in."""
    return layer.removesuffix(".conv2")


# ---------------------------------------------------------------- plotly figures

def _rounded(a: torch.Tensor | np.ndarray, decimals: int = 3) -> list:
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


def _percent_labels(alpha: torch.Tensor) -> list[list[str]]:
    """The bank weights as whole percentages, the cells' labels: two digits fit the
    narrow cells of a phone's screen, where "0.25" ran into its neighbours."""
    return [[f"{round(100 * v)}" for v in row] for row in alpha.tolist()]


def _image_title(stats: GateStats, i: int, k: int, n: int) -> str:
    """Image ``i`` as step ``k`` (from 0) of ``n``: its class and the verdict. Short, since
    plotly titles do not wrap; the test-set index is the image panel's title."""
    true, pred = stats.classes[stats.labels[i]], stats.classes[stats.preds[i]]
    verdict = "correct" if true == pred else f"predicted {pred}"
    return f"Image {k + 1} of {n}: {true} ({verdict})"


def image_figure(stats: GateStats, indices: list[int], title_suffix: str = "") -> go.Figure:
    """One image at a time, chosen with a slider: the image, its modulation m as a
    layers x channels heatmap (blank where a layer has fewer channels), and its
    bias-bank weights alpha per layer. Keep ``indices`` short (~12-20): every step's
    data is written into the page."""
    if not indices:
        raise ValueError("image_figure needs at least one image index.")
    names = [short_name(n) for n in stats.layers]
    # Short subplot titles: the axes say the rest, and three titles must fit 390 px.
    fig = make_subplots(rows=1, cols=3, column_widths=[0.2, 0.5, 0.3], horizontal_spacing=0.08,
                        subplot_titles=[f"test #{indices[0]}", "modulation m", "weights α, %"])
    first = indices[0]
    # The image is a layout image, not a trace, so that one slider step can swap it
    # (a layout update) and the two heatmaps' z (a trace update) together.
    h, w = stats.images.shape[-2:]
    fig.add_layout_image(source=png_uri(stats.images[first]), xref="x", yref="y", x=0, y=h,
                         sizex=w, sizey=h, sizing="stretch", layer="below")
    fig.add_trace(go.Heatmap(
        z=_rounded(modulation_matrix(stats, first)), y=names, zmin=0, zmax=2, zmid=1, colorscale=M_COLORS,
        colorbar=dict(title="m", len=0.9), hovertemplate="%{y}, channel %{x}: m = %{z:.2f}<extra></extra>"),
        1, 2)
    k = stats.alpha[stats.layers[0]].shape[1]
    fig.add_trace(go.Heatmap(
        z=_rounded(alpha_matrix(stats, first), 2), y=names, x=[f"α{j + 1}" for j in range(k)], zmin=0, zmax=1,
        colorscale="Greens", showscale=False, text=_percent_labels(alpha_matrix(stats, first)),
        texttemplate="%{text}", textfont_size=10,
        hovertemplate="%{y}, %{x} = %{z:.2f}<extra></extra>"), 1, 3)
    n = len(indices)
    steps = [dict(method="update", label=str(step + 1),  # "1".."n": the slider's ticks
                  args=[{"z": [_rounded(modulation_matrix(stats, i)), _rounded(alpha_matrix(stats, i), 2)],
                         "text": [None, _percent_labels(alpha_matrix(stats, i))]},
                        {"title.text": _image_title(stats, i, step, n) + title_suffix,
                         "annotations[0].text": f"test #{i}",  # the image panel's title
                         "images[0].source": png_uri(stats.images[i])}])
             for step, i in enumerate(indices)]
    fig.update_annotations(font_size=13)  # the subplot titles: three side by side on a phone
    fig.update_yaxes(autorange="reversed", col=2)
    fig.update_yaxes(autorange="reversed", showticklabels=False, col=3)
    fig.update_xaxes(title_text="channel", col=2)
    fig.update_xaxes(range=[0, w], visible=False, constrain="domain", col=1)
    fig.update_yaxes(range=[0, h], visible=False, scaleanchor="x", constrain="domain", col=1)
    fig.update_layout(
        title=_image_title(stats, first, 0, n) + title_suffix, height=460,
        margin=dict(t=80, b=90, l=60, r=20),
        sliders=[dict(steps=steps, active=0, pad=dict(t=40),
                      currentvalue=dict(visible=False))])  # the title says which image
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
        traces.append(go.Heatmap(z=_rounded(cm), y=list(stats.classes), zmin=0, zmax=2, zmid=1,
                                 colorscale=M_COLORS, colorbar=dict(title="mean m"),
                                 hovertemplate="%{y}, channel %{x}: mean m = %{z:.3f}<extra></extra>"))
        labels.append((f"{short_name(n)}: mean m", f"Mean modulation per class, {short_name(n)}"))
        traces.append(go.Heatmap(z=_rounded(diff), y=list(stats.classes), zmin=-span, zmax=span, zmid=0,
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
        fig.add_scatter(x=centres, y=_rounded(100 * hist / hist.sum(), 2), mode="lines", name=name,
                        line_shape="hvh", row=1, col=1)
    for x in (LOW, 1.0, HIGH):
        fig.add_vline(x=x, line=dict(color="grey", width=1, dash="dot"), row=1, col=1)
    s = stats.summary
    fig.add_bar(x=names, y=_rounded(100 * s["share_below"], 2), name=f"m < {LOW}", marker_color="#2166ac",
                row=1, col=2)
    fig.add_bar(x=names, y=_rounded(100 * s["share_above"], 2), name=f"m > {HIGH}", marker_color="#b2182b",
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
        fig.add_bar(x=names, y=_rounded(mean), name=label,
                    error_y=dict(type="data", symmetric=False, array=_rounded(q[:, 1] - mean),
                                 arrayminus=_rounded(mean - q[:, 0])))
    k = stats.alpha[stats.layers[0]].shape[1]
    fig.add_hline(y=1 / k, line=dict(color="grey", dash="dot"), annotation_text=f"1/K = {1 / k:.2f}")
    fig.update_layout(barmode="group", height=380,
                      yaxis=dict(range=[0, 1.05], title="mean over test images (0 to 1)"),
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
        fig.add_bar(x=x, y=_rounded(rows["class_m"]), name=f"mean m, {c}", marker_color="#2166ac",
                    visible=c == present[0])
        fig.add_scatter(x=x, y=_rounded(rows["all_m"]), mode="markers", name="mean m, all images",
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
    true, pred = stats.classes[stats.labels[index]], stats.classes[stats.preds[index]]
    ax_img.set_title(f"test #{index}: {true}" + ("" if true == pred else f" (predicted {pred})"),
                     fontsize=9)
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


# ---------------------------------------------------------------- results over seeds

def seed_plot(results: Sequence[dict], metric: str = "final_test_acc", title: str | None = None,
              subtitle: str | None = None) -> go.Figure:
    """Every seed's accuracy per variant (points over a box), hover shows the seed; one
    box per group of :func:`abn.stats.group_runs` (a variant in one setup). ``subtitle``
    (in smaller type, under the title) is where a long label of the runs fits."""
    groups = group_runs(results)
    several = len({setup for setup, _ in groups}) > 1
    fig = go.Figure()
    for (setup, name), seeds in groups.items():
        ss = sorted(seeds)
        label = f"{name} ({setup.protocol}, {setup.epochs} ep, w {setup.width:g})" if several else name
        fig.add_trace(go.Box(y=[seeds[s][metric] for s in ss], name=label, boxpoints="all",
                             jitter=0.4, pointpos=0, customdata=ss, showlegend=False,
                             hovertemplate="%{x}<br>seed %{customdata}: %{y:.2f}%<extra></extra>"))
    fig.update_layout(title=dict(text=title or f"{metric} per seed"),
                      yaxis_title="accuracy (%)", height=430)
    return with_subtitle(fig, subtitle) if subtitle else fig


def with_subtitle(fig: go.Figure, text: str, width: int = 55) -> go.Figure:
    """``fig`` with ``text`` in small type under its title, broken into lines of at most
    ``width`` characters (plotly never wraps a title, and a phone is 390 px wide); the
    top margin and the height grow by a line's height for each line."""
    lines = textwrap.wrap(text, width)
    extra = 16 * len(lines) + 8
    top = fig.layout.margin.t if fig.layout.margin.t is not None else 60
    fig.update_layout(title_subtitle=dict(text="<br>".join(lines), font_size=11),
                      margin_t=top + extra, height=(fig.layout.height or 450) + extra)
    return fig


def styled_table(table: pd.DataFrame, caption: str):
    """:func:`abn.stats.comparison_table` for reading, narrow enough for a page column:
    the test accuracy as ``mean ± std``, each interval as one ``[low, high]`` cell,
    signed differences, the paired t-test's p as it is and Holm-adjusted (the header
    says over how many comparisons), a dash for what is missing (the bootstrap below 5
    seeds), a caption. Parameters and training speed are left to the comparison table
    itself and to chapter 8's cost table: with them the view no longer fits a column."""
    def num(v: float, fmt: str = "{:.2f}") -> str:
        return "–" if pd.isna(v) else fmt.format(v)

    def interval(low: pd.Series, high: pd.Series) -> list[str]:
        return ["–" if pd.isna(lo) else f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in zip(low, high)]

    delta = next(c for c in table.columns if c.startswith("Δ vs "))
    view = table[[c for c in ("protocol",) if c in table.columns]].copy()
    view["n"] = table["n"]
    view["test acc. (mean ± std)"] = [f"{m:.2f} ± {num(s)}" for m, s in zip(table["mean"], table["std"])]
    view["val. acc."] = table["val mean"].map(num)
    view["best epoch (paper-style)"] = table["best-epoch mean (paper-style)"].map(num)
    view[delta] = table[delta].map(lambda v: num(v, "{:+.2f}"))
    for kind in ("t-CI", "bootstrap"):
        low = next(c for c in table.columns if c.endswith(f" {kind} low"))
        view[low.removesuffix(" low")] = interval(table[low], table[low.replace(" low", " high")])
    view["p (paired t)"] = table["p (paired t)"].map(lambda v: num(v, "{:.3f}"))
    ks = sorted({int(k) for k in table["comparisons"].dropna()})
    family = (f"over {ks[0]} comparison{'s' if ks[0] != 1 else ''}" if len(ks) == 1
              else "over each setup's comparisons")
    view[f"p, Holm-adjusted {family}"] = table["p (Holm)"].map(lambda v: num(v, "{:.3f}"))
    return view.style.set_caption(caption)


# ---------------------------------------------------------------- where each gate sits

_DMB_COLOR, _AFTER_COLOR, _BN_COLOR = "#4c78a8", "#e45756", "#9d755d"


def block_diagram(highlight: str = "all") -> str:
    """HTML (an inline SVG) of a BasicBlock's residual branch and where each gate reads
    and writes relative to ``bn2``: DMB reads conv2's input and scales conv2's output
    *before* bn2; SE and SE-Var3 read and scale the branch *after* bn2; the query-key gate
    reads the shortcut and the branch after bn2 and scales the branch.

    Drawn top to bottom so that it stays legible at a phone's 390 px; the background is
    transparent and free text and lines use ``currentColor``, so it follows the page's
    light or dark theme. ``highlight``: "all", "dmb" or "after" (the other gates faint).
    """
    if highlight not in ("all", "dmb", "after"):
        raise ValueError(f"highlight must be 'all', 'dmb' or 'after', got {highlight!r}.")
    faint = {"dmb": highlight == "after", "after": highlight == "dmb"}

    def box(x, y, w, h, text, color="currentColor", fill_opacity=0.12, opacity=1.0, bold=False):
        weight = ' font-weight="bold"' if bold else ""
        lines = text.split("\n")
        spans = "".join(f'<tspan x="{x + w / 2}" dy="{0 if i == 0 else 15}">{t}</tspan>'
                        for i, t in enumerate(lines))
        ty = y + h / 2 + 4.5 - 7.5 * (len(lines) - 1)
        return (f'<g opacity="{opacity}"><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" '
                f'fill="{color}" fill-opacity="{fill_opacity}" stroke="{color}" stroke-width="1.5"/>'
                f'<text x="{x + w / 2}" y="{ty}" text-anchor="middle"{weight}>{spans}</text></g>')

    def arrow(x1, y1, x2, y2, color="currentColor", dash=False, opacity=1.0):
        d = ' stroke-dasharray="4 3"' if dash else ""
        return (f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{color}" stroke-width="1.6"'
                f' marker-end="url(#abn-arrow)"{d} opacity="{opacity}"/>')

    def label(x, y, text, color="currentColor", anchor="start", size=12, opacity=1.0):
        return (f'<text x="{x}" y="{y}" fill="{color}" font-size="{size}" text-anchor="{anchor}" '
                f'opacity="{opacity}">{text}</text>')

    cx, bw = 105, 150  # main column centre and box width
    left = cx - bw / 2
    gx, gw = 203, 132  # gate column
    dmb_o = 0.25 if faint["dmb"] else 1.0
    aft_o = 0.25 if faint["after"] else 1.0
    parts = [
        '<defs><marker id="abn-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="context-stroke"/></marker></defs>',
        box(left, 8, bw, 28, "block input x"),
        arrow(cx, 36, cx, 54),
        box(left, 56, bw, 28, "conv1 → bn1 → ReLU"),
        # DMB reads conv2's input
        arrow(cx, 84, cx, 126),
        f'<circle cx="{cx}" cy="102" r="3.5" fill="{_DMB_COLOR}" opacity="{dmb_o}"/>',
        arrow(cx, 102, gx, 102, _DMB_COLOR, opacity=dmb_o),
        box(gx, 86, gw, 44, "DMB gate m from\nGAP(conv2 input)", _DMB_COLOR, opacity=dmb_o),
        box(left, 128, bw, 28, "conv2"),
        arrow(cx, 156, cx, 174),
        box(left, 176, bw, 28, "× m", _DMB_COLOR, opacity=1.0, bold=True),
        arrow(gx + gw / 2, 130, gx + gw / 2, 190, _DMB_COLOR, opacity=dmb_o),
        f'<line x1="{gx + gw / 2}" y1="190" x2="{left + bw + 2}" y2="190" stroke="{_DMB_COLOR}" '
        f'stroke-width="1.6" marker-end="url(#abn-arrow)" opacity="{dmb_o}"/>',
        arrow(cx, 204, cx, 222),
        box(left, 224, bw, 40, "bn2\nerases constant gains", _BN_COLOR, fill_opacity=0.25, bold=True),
        arrow(cx, 264, cx, 318),
        label(cx - 8, 292, "δ", anchor="end", size=14),
        # SE / SE-Var3 / QK read the branch after bn2 (QK also the shortcut)
        f'<circle cx="{cx}" cy="284" r="3.5" fill="{_AFTER_COLOR}" opacity="{aft_o}"/>',
        arrow(cx, 284, gx, 284, _AFTER_COLOR, opacity=aft_o),
        box(gx, 268, gw, 44, "SE, SE-Var3: g(δ)\nQK: g(h, δ)", _AFTER_COLOR,
            opacity=aft_o),
        box(left, 320, bw, 28, "× g", _AFTER_COLOR, opacity=aft_o, bold=True),
        arrow(gx + gw / 2, 312, gx + gw / 2, 334, _AFTER_COLOR, opacity=aft_o),
        f'<line x1="{gx + gw / 2}" y1="334" x2="{left + bw + 2}" y2="334" stroke="{_AFTER_COLOR}" '
        f'stroke-width="1.6" marker-end="url(#abn-arrow)" opacity="{aft_o}"/>',
        arrow(cx, 348, cx, 370),
        box(left, 372, bw, 28, "h + δ → ReLU"),
        # the shortcut h, down the right edge; QK reads it
        f'<polyline points="{cx + 40},36 {cx + 40},44 354,44 354,386 {left + bw + 2},386" '
        'fill="none" stroke="currentColor" stroke-width="1.6" marker-end="url(#abn-arrow)"/>',
        label(348, 60, "shortcut h", anchor="end", size=11),
        arrow(354, 300, gx + gw + 1, 300, _AFTER_COLOR, dash=True, opacity=aft_o),
        label(350, 262, "QK also reads h", _AFTER_COLOR, anchor="end", size=11, opacity=aft_o),
    ]
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 360 408" role="img" '
           f'aria-label="Where each gate reads and writes in a ResNet block, relative to bn2" '
           f'style="width:100%;max-width:460px;height:auto;background:transparent" '
           f'font-family="sans-serif" font-size="12" fill="currentColor">{"".join(parts)}</svg>')
    return f'<div class="abn-block-diagram" style="margin:0.5em 0">{svg}</div>'


def cv_figure(stats: GateStats) -> go.Figure:
    """What batch norm lets through of the DMB gain: for each layer, every channel's
    coefficient of variation of m across images (std / mean over images,
    :func:`abn.gate_stats.across_image_cv`), as points over a box."""
    from abn.gate_stats import across_image_cv

    fig = go.Figure()
    for n in stats.layers:
        cv = across_image_cv(stats.m[n])
        fig.add_box(y=_rounded(cv, 4), name=short_name(n), boxpoints="all", jitter=0.4, pointpos=0,
                    marker=dict(size=4), line=dict(width=1.2), showlegend=False,
                    customdata=list(range(len(cv))),
                    hovertemplate="%{x}, channel %{customdata}: CV %{y:.3f}<extra></extra>")
    fig.update_layout(height=400, yaxis=dict(title="CV of m across images", rangemode="tozero"),
                      title="Each channel's CV of m across images")
    return fig
