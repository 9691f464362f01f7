"""The ``proglearn`` command: show | validate | plot | presets | ablate.

Exit codes: 0 success, 2 invalid input (bad spec, bad file, bad flag), 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import ablate
from .io import list_presets, load_schedule
from .schedule import PlanRow, plan
from .spec import Schedule, ScheduleError

__all__ = ["main", "plot_schedule", "schedule_table"]


def _fmt(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.4g}"


def schedule_table(spec: Schedule, title: str | None = None):  # type: ignore[no-untyped-def]
    """A rich Table of ``plan(spec)``: one row per stage."""
    from rich.table import Table

    rows = plan(spec)
    knobs = list(spec.knobs.ramps())
    table = Table(title=title, title_justify="left")
    for col in ("stage", "epochs", "image size", "batch size", *knobs):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r.index), f"{r.epoch_start}–{r.epoch_end}", str(r.image_size),
            "-" if r.batch_size is None else str(r.batch_size),
            *(_fmt(r.values[k]) for k in knobs))
    return table


def _step_xy(rows: list[PlanRow], values: list[float]) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for r, v in zip(rows, values, strict=True):
        xs += [r.epoch_start, r.epoch_end]
        ys += [v, v]
    return xs, ys


def plot_schedule(spec: Schedule, path: str | Path, title: str | None = None) -> Path:
    """Write a PNG/SVG/PDF of image size and every knob against epoch, stage boundaries marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = plan(spec)
    knobs = list(spec.knobs.ramps())
    panels = 1 + len(knobs) + (spec.batch_size is not None and spec.batch_size.policy != "constant")
    fig, axes = plt.subplots(panels, 1, sharex=True, figsize=(8, 1.3 + 1.6 * panels),
                             squeeze=False)
    series: list[tuple[str, list[float]]] = [("image size (px)", [r.image_size for r in rows])]
    if panels > 1 + len(knobs):
        series.append(("batch size", [r.batch_size or 0 for r in rows]))
    series += [(k, [r.values[k] for r in rows]) for k in knobs]
    boundaries = sorted({r.epoch_start for r in rows[1:]}) if spec.mode != "random" else []
    for ax, (label, values) in zip(axes[:, 0], series, strict=True):
        xs, ys = _step_xy(rows, values)
        ax.plot(xs, ys, lw=2, color="C0" if label.startswith("image") else "C1")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        for b in boundaries:
            ax.axvline(b, color="grey", ls="--", lw=0.8)
        lo, hi = min(ys), max(ys)
        pad = (hi - lo) * 0.1 or max(abs(hi) * 0.1, 0.05)
        ax.set_ylim(lo - pad, hi + pad)
    axes[-1, 0].set_xlabel("epoch")
    axes[-1, 0].set_xlim(0, spec.epochs)
    for r in rows if spec.mode != "random" else []:
        axes[0, 0].annotate(f"stage {r.index}", ((r.epoch_start + r.epoch_end) / 2, 1.02),
                            xycoords=("data", "axes fraction"), ha="center", fontsize=8)
    fig.suptitle(title or f"proglearn schedule ({spec.mode}, {spec.convention} convention)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cmd_show(args: argparse.Namespace) -> int:
    spec = load_schedule(args.spec)
    if args.json:
        print(json.dumps([r.to_dict() for r in plan(spec)], indent=2))
        return 0
    from rich.console import Console

    table = schedule_table(spec, title=f"{args.spec} — {spec.mode}, {spec.convention} "
                                       f"convention, {spec.epochs} epochs")
    console = Console()
    width = Console(width=1000).measure(table).maximum
    Console(width=max(console.width, width)).print(table)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    load_schedule(args.spec)
    print("ok")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    spec = load_schedule(args.spec)
    out = plot_schedule(spec, args.output, title=f"{args.spec} ({spec.mode})")
    print(f"wrote {out}")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    for name in list_presets():
        print(name)
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[no-untyped-def]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="proglearn", description="Progressive learning schedules "
                "(EfficientNetV2, Algorithm 1): inspect, validate, plot, ablate.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    spec_help = "a schedule YAML file or a preset name (see `proglearn presets`)"

    s = sub.add_parser("show", help="print the per-stage plan as a table (or JSON)")
    s.add_argument("spec", help=spec_help)
    s.add_argument("--json", action="store_true", help="print a JSON list, one object per stage")
    s.set_defaults(func=_cmd_show)

    s = sub.add_parser("validate", help="check a schedule; exit 0 and 'ok', or 2 and the error")
    s.add_argument("spec", help=spec_help)
    s.set_defaults(func=_cmd_validate)

    s = sub.add_parser("plot", help="plot image size and every knob against epoch")
    s.add_argument("spec", help=spec_help)
    s.add_argument("-o", "--output", required=True, help="output image (.png, .svg, .pdf)")
    s.set_defaults(func=_cmd_plot)

    s = sub.add_parser("presets", help="list the shipped presets")
    s.set_defaults(func=_cmd_presets)

    s = sub.add_parser("ablate", help="train one model under fixed/resize_only/adaptive/random "
                       "and compare accuracy and wall-clock")
    ablate.add_arguments(s)
    s.set_defaults(func=ablate.main)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ScheduleError as exc:
        print(f"proglearn {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `proglearn show ... --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
