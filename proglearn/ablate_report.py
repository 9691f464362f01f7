"""The table and the plot of an ablation (rich and matplotlib; no training framework)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ablate import AblationResult, RunResult, Stat

__all__ = ["KNOB_COLORS", "MODE_STYLE", "plot_ablation", "results_table"]

#: Colour and line style of each mode, in the table's order.
MODE_STYLE: dict[str, dict[str, Any]] = {
    "fixed": {"color": "#444444", "linestyle": "-", "marker": "s"},
    "resize_only": {"color": "#1f77b4", "linestyle": "-", "marker": "o"},
    "adaptive": {"color": "#d62728", "linestyle": "-", "marker": "^"},
    "random": {"color": "#2ca02c", "linestyle": "--", "marker": "v"},
}

#: Colours of the knobs in the regularization panel (distinct from the modes').
KNOB_COLORS = ("#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def _fmt(stat: Stat | None, digits: int = 2, suffix: str = "") -> str:
    return "—" if stat is None else stat.format(digits, suffix, sep="±")


def results_table(result: AblationResult) -> Any:
    """A ``rich.table.Table``: one row per mode, mean ± std over seeds when there are several."""
    from rich import box
    from rich.table import Table

    cfg = result.config
    nseeds = len(result.seeds)
    devices = sorted({r.device for r in result.runs}) or ["?"]
    sched = cfg.base_schedule
    size = sched.image_size
    title = (f"{result.title}: {cfg.model.name} on {Path(cfg.data.name).name}, "
             f"{sched.epochs} epochs, {sched.stages} stages, {size.start}→{size.end} px "
             f"(eval {size.eval_size}), {nseeds} seed{'s' if nseeds > 1 else ''}")
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                  caption=(f"top-1 on the held-out set at {size.eval_size} px; wall-clock = "
                           f"training time, evaluation excluded; device: {', '.join(devices)}"
                           + ("; mean ± std over seeds" if nseeds > 1 else "")))
    table.add_column("mode", no_wrap=True)
    for name in ("final\ntop-1 %", "best\ntop-1 %", "wall-clock\ns", "images/s",
                 "speedup\nvs fixed", "FLOP\nideal"):
        table.add_column(name, justify="right", no_wrap=True)
    digits = 1 if nseeds > 1 else 2
    for mode, s in result.summaries.items():
        table.add_row(mode, _fmt(s.final_top1, digits), _fmt(s.best_top1, digits),
                      _fmt(s.wall_clock_s, 1), _fmt(s.images_per_s, 0),
                      _fmt(s.speedup_vs_fixed, 2, "×"),
                      # deterministic except in random mode: no "±0.00" when all seeds agree
                      _fmt(s.flop_speedup, 2, "×") if s.flop_speedup.std
                      else f"{s.flop_speedup.mean:.2f}×")
    return table


def _mean_curve(runs: Sequence[RunResult]) -> tuple[list[float], list[float]]:
    """Epoch-wise mean of (wall-clock, top-1) over seeds, on the epochs every seed evaluated."""
    per_epoch: dict[int, list[tuple[float, float]]] = {}
    for r in runs:
        for rec in r.history:
            if rec.eval_top1 is not None:
                per_epoch.setdefault(rec.epoch, []).append((rec.wall_clock_s, rec.eval_top1))
    xs, ys = [], []
    for epoch in sorted(per_epoch):
        pts = per_epoch[epoch]
        if len(pts) == len(runs):
            xs.append(sum(p[0] for p in pts) / len(pts))
            ys.append(sum(p[1] for p in pts) / len(pts))
    return xs, ys


def _steps(values: Sequence[float]) -> tuple[list[int], list[float]]:
    """x, y for a post-step line over epochs 0..E (one flat piece per epoch)."""
    return list(range(len(values) + 1)), [*values, values[-1]]


def plot_ablation(result: AblationResult, path: str | Path) -> Path:
    """Write the ablation plot to ``path`` (PNG): top-1 against training wall-clock (one line
    per mode, mean over seeds, each seed faint), the image size of every epoch, and the
    regularization of every epoch relative to its final value."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    by_mode = {m: [r for r in result.runs if r.mode == m] for m in result.modes}
    by_mode = {m: rs for m, rs in by_mode.items() if rs}
    ramps = result.config.base_schedule.knobs.ramps()
    knobs = [k for k in ramps if any(k in r.history[0].values
                                     for rs in by_mode.values() for r in rs)]
    ncols = 3 if knobs else 2
    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 4.2), constrained_layout=True)
    ax_acc, ax_size = axes[0], axes[1]

    for mode, rs in by_mode.items():
        style = MODE_STYLE.get(mode, {})
        if len(rs) > 1:
            for r in rs:
                pts = [(h.wall_clock_s, h.eval_top1) for h in r.history if h.eval_top1 is not None]
                ax_acc.plot(*zip(*pts, strict=True), color=style.get("color"), alpha=0.25,
                            linewidth=0.8)
        xs, ys = _mean_curve(rs)
        summary = result.summaries.get(mode)
        label = mode if summary is None else f"{mode} ({summary.final_top1.mean:.1f}%)"
        ax_acc.plot(xs, ys, label=label, markersize=4, **style)
        first = rs[0]
        ax_size.step(*_steps([h.image_size for h in first.history]), where="post",
                     label=mode, color=style.get("color"), linestyle=style.get("linestyle"),
                     linewidth=4 if mode == "resize_only" else 1.5,
                     alpha=0.45 if mode == "resize_only" else 1.0)  # under adaptive's line
        if knobs and mode in ("adaptive", "random"):  # resize_only/fixed: constant, below
            for i, knob in enumerate(knobs):
                ramp = ramps[knob]
                scale = ramp.end or max(abs(ramp.start), 1e-12)
                rel = [h.values.get(knob, 0.0) / scale for h in first.history]
                knob_label: str | None = f"{knob} {ramp.start:g}→{ramp.end:g} (adaptive)"
                if mode == "random":
                    knob_label = "same knobs (random)" if i == 0 else None
                axes[2].step(*_steps(rel), where="post", color=KNOB_COLORS[i % len(KNOB_COLORS)],
                             linestyle="-" if mode == "adaptive" else ":",
                             alpha=1.0 if mode == "adaptive" else 0.6, label=knob_label)
    if knobs and any(m in by_mode for m in ("resize_only", "fixed")):
        n = max(len(rs[0].history) for rs in by_mode.values())
        const = " & ".join(m for m in ("resize_only", "fixed") if m in by_mode)
        axes[2].step(*_steps([1.0] * n), where="post", color=MODE_STYLE["resize_only"]["color"],
                     linestyle="--", linewidth=2, label=f"every knob ({const})")
    nseeds = len(result.seeds)
    ax_acc.set_title("held-out top-1 vs training wall-clock"
                     + (f" (mean of {nseeds} seeds)" if nseeds > 1 else ""))
    ax_acc.set_xlabel("training wall-clock (s, evaluation excluded)")
    ax_acc.set_ylabel(f"top-1 % at {result.config.base_schedule.image_size.eval_size} px")
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    ax_size.set_title(f"image size per epoch (seed {result.seeds[0]})")
    ax_size.set_xlabel("epoch")
    ax_size.set_ylabel("train image size (px)")
    ax_size.grid(alpha=0.3)
    ax_size.legend(fontsize=8)
    for ax in axes[1:]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if knobs:
        ax = axes[2]
        ax.set_title("regularization per epoch (÷ final value)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("value / final value")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(result.title, fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
