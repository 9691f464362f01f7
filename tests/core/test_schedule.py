"""Schedule arithmetic: whole expected tables for every mode, both conventions, M = 1, 2, 3, 4."""

from __future__ import annotations

import pytest

import proglearn as pl
from proglearn import Schedule, ScheduleError


def make(**kw) -> Schedule:
    base = dict(epochs=12, stages=4, image_size={"start": 128, "end": 300},
                knobs={"dropout": [0.1, 0.3], "randaug_magnitude": [5, 15]})
    base.update(kw)
    return Schedule(**base)


def table(spec: Schedule) -> list[tuple]:
    """(stage, epoch_start, epoch_end, size, dropout, randaug) for every plan row."""
    return [(r.index, r.epoch_start, r.epoch_end, r.image_size, r.values["dropout"],
             r.values["randaug_magnitude"]) for r in pl.plan(spec)]


# --- paper convention ---------------------------------------------------------------------------
def test_m4_paper_adaptive():
    assert table(make()) == [
        (0, 0, 3, 128, 0.1, 5.0),
        (1, 3, 6, 185, 0.1666666667, 8.3333333333),
        (2, 6, 9, 242, 0.2333333333, 11.6666666667),
        (3, 9, 12, 300, 0.3, 15.0),
    ]


def test_m2_paper_adaptive():
    assert table(make(stages=2)) == [
        (0, 0, 6, 128, 0.1, 5.0),
        (1, 6, 12, 300, 0.3, 15.0),
    ]


def test_m1_trains_at_end_values_in_both_conventions():
    for convention in ("paper", "automl"):
        assert table(make(stages=1, convention=convention)) == [(0, 0, 12, 300, 0.3, 15.0)]


def test_m3_remainder_goes_to_later_stages():
    # 10 epochs / 3 stages: start_i = floor(i * 10 / 3) -> 0, 3, 6; lengths 3, 3, 4.
    assert table(make(epochs=10, stages=3)) == [
        (0, 0, 3, 128, 0.1, 5.0),
        (1, 3, 6, 214, 0.2, 10.0),
        (2, 6, 10, 300, 0.3, 15.0),
    ]
    # 11 epochs / 4 stages -> starts 0, 2, 5, 8; lengths 2, 3, 3, 3.
    assert [(r.epoch_start, r.epoch_end) for r in pl.plan(make(epochs=11))] == [
        (0, 2), (2, 5), (5, 8), (8, 11)]


# --- automl (released code) convention ----------------------------------------------------------
def test_m4_automl_sizes_use_i_plus_1_over_m_knobs_use_linspace():
    assert table(make(convention="automl")) == [
        (0, 0, 3, 171, 0.1, 5.0),
        (1, 3, 6, 214, 0.1666666667, 8.3333333333),
        (2, 6, 9, 257, 0.2333333333, 11.6666666667),
        (3, 9, 12, 300, 0.3, 15.0),
    ]


def test_m2_automl():
    assert table(make(stages=2, convention="automl")) == [
        (0, 0, 6, 214, 0.1, 5.0),
        (1, 6, 12, 300, 0.3, 15.0),
    ]


# --- modes --------------------------------------------------------------------------------------
def test_resize_only_holds_regularization_at_end_value():
    assert table(make(mode="resize_only")) == [
        (0, 0, 3, 128, 0.3, 15.0),
        (1, 3, 6, 185, 0.3, 15.0),
        (2, 6, 9, 242, 0.3, 15.0),
        (3, 9, 12, 300, 0.3, 15.0),
    ]
    assert table(make(mode="resize_only", convention="automl"))[0] == (0, 0, 3, 171, 0.3, 15.0)


def test_fixed_uses_end_size_and_end_regularization():
    for convention in ("paper", "automl"):
        assert table(make(mode="fixed", convention=convention)) == [
            (0, 0, 3, 300, 0.3, 15.0),
            (1, 3, 6, 300, 0.3, 15.0),
            (2, 6, 9, 300, 0.3, 15.0),
            (3, 9, 12, 300, 0.3, 15.0),
        ]
    assert pl.flop_cost_ratio(make(mode="fixed")) == 1.0


def test_random_mode_draws_a_seeded_stage_per_epoch():
    spec = make(mode="random", seed=0)
    stages = [pl.stage_at_epoch(spec, e) for e in range(12)]
    assert stages == [3, 2, 3, 2, 1, 2, 1, 3, 1, 1, 1, 0]
    # Pure: the same on every call (every process), and a different seed draws differently.
    assert stages == [pl.stage_at_epoch(make(mode="random", seed=0), e) for e in range(12)]
    assert stages != [pl.stage_at_epoch(make(mode="random", seed=1), e) for e in range(12)]
    # The plan is the run-length encoding of the draws, with each stage's adaptive values.
    s0, s1, s2, s3 = (128, 0.1, 5.0), (185, 0.1666666667, 8.3333333333), (
        242, 0.2333333333, 11.6666666667), (300, 0.3, 15.0)
    assert table(spec) == [
        (3, 0, 1, *s3), (2, 1, 2, *s2), (3, 2, 3, *s3), (2, 3, 4, *s2), (1, 4, 5, *s1),
        (2, 5, 6, *s2), (1, 6, 7, *s1), (3, 7, 8, *s3), (1, 8, 11, *s1), (0, 11, 12, *s0),
    ]
    with pytest.raises(ScheduleError, match="random"):
        pl.stage_epochs(spec, 0)


# --- boundaries, delay/finetune, steps, fractions -----------------------------------------------
def test_delay_and_finetune_extend_first_and_last_stage():
    # E=20: D=4, F=4, R=12 -> starts 0, 4+3, 4+6, 4+9.
    spec = make(epochs=20, delay_fraction=0.2, finetune_fraction=0.2)
    assert [(r.epoch_start, r.epoch_end) for r in pl.plan(spec)] == [
        (0, 7), (7, 10), (10, 13), (13, 20)]


def test_explicit_boundaries():
    spec = make(boundaries=[0, 2, 5, 9])
    assert [(r.epoch_start, r.epoch_end) for r in pl.plan(spec)] == [
        (0, 2), (2, 5), (5, 9), (9, 12)]
    assert [pl.stage_at_epoch(spec, e) for e in range(14)] == [
        0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3]


def test_step_based_stages_last_n_over_m_steps():
    spec = make(epochs=6, steps_per_epoch=5)  # N = 30 steps, M = 4: starts 0, 7, 15, 22
    assert pl.stage_starts(spec, 30) == (0, 7, 15, 22)
    assert [pl.stage_at_step(spec, s) for s in range(30)] == (
        [0] * 7 + [1] * 8 + [2] * 7 + [3] * 8)
    assert pl.stage_starts(spec) == (0, 1, 3, 4)  # the same spec in epochs
    with pytest.raises(ScheduleError, match="steps_per_epoch"):
        pl.stage_at_step(make(), 3)


def test_fraction():
    spec = make()
    assert [pl.stage_at_fraction(spec, f) for f in (0, 0.2499, 0.25, 0.5, 0.74, 0.75, 1.0)] == [
        0, 0, 1, 2, 2, 3, 3]
    steps = make(epochs=6, steps_per_epoch=5)
    assert [pl.stage_at_fraction(steps, f) for f in (0.2, 0.25, 0.5, 1.0)] == [0, 1, 2, 3]
    for bad in (-0.1, 1.5, "0.5", True):
        with pytest.raises(ValueError, match="fraction"):
            pl.stage_at_fraction(spec, bad)  # type: ignore[arg-type]


def test_epochs_past_the_end_stay_in_last_stage_and_negative_epochs_fail():
    spec = make()
    assert pl.stage_at_epoch(spec, 12) == pl.stage_at_epoch(spec, 500) == 3
    with pytest.raises(ValueError, match=r"epoch: must be an integer >= 0 \(received -1\)"):
        pl.stage_at_epoch(spec, -1)
    with pytest.raises(ValueError, match=r"stage: must be < stages=4 \(received 4\)"):
        pl.stage_values(spec, 4)


# --- sizes, batch sizes -------------------------------------------------------------------------
def test_size_multiple_rounds_to_nearest_multiple():
    spec = make(image_size={"start": 128, "end": 320, "multiple": 32})
    # exact 128, 192, 256, 320 -> already multiples; and a case that rounds:
    assert [r.image_size for r in pl.plan(spec)] == [128, 192, 256, 320]
    spec = make(image_size={"start": 96, "end": 288, "multiple": 32}, stages=3)
    assert [r.image_size for r in pl.plan(make(epochs=12, stages=4,
            image_size={"start": 128, "end": 384, "multiple": 32}))] == [128, 224, 288, 384]
    assert [r.image_size for r in pl.plan(spec)] == [96, 192, 288]


def test_batch_size_constant_and_pixel_policy():
    assert [(r.batch_size, r.lr_scale) for r in pl.plan(make(batch_size=256))] == [
        (256, 1.0)] * 4
    assert [(r.batch_size, r.lr_scale) for r in pl.plan(make(batch_size=None))] == [(None, 1.0)] * 4
    spec = make(batch_size={"size": 256, "policy": "pixels", "max": 1024})
    # floor(256 * 300^2 / s^2) for s = 128, 185, 242, 300, capped at 1024
    assert [(r.batch_size, r.lr_scale) for r in pl.plan(spec)] == [
        (1024, 4.0), (673, 673 / 256), (393, 393 / 256), (256, 1.0)]
    spec = make(batch_size={"size": 256, "policy": "pixels", "max": 1024, "multiple": 8})
    assert [r.batch_size for r in pl.plan(spec)] == [1024, 672, 392, 256]
    spec = make(mode="fixed", batch_size={"size": 256, "policy": "pixels"})
    assert [r.batch_size for r in pl.plan(spec)] == [256] * 4


def test_flop_cost_ratio_matches_sum_of_squares():
    spec = make()
    expected = (128**2 + 185**2 + 242**2 + 300**2) / (4 * 300**2)
    assert pl.flop_cost_ratio(spec) == pytest.approx(expected)


def test_is_zero():
    spec = make(knobs={"mixup_alpha": [0, 0], "dropout": [0, 0.2]})
    assert pl.is_zero(spec, "mixup_alpha")
    assert not pl.is_zero(spec, "dropout")
    assert pl.is_zero(spec, "absent")


# --- presets ------------------------------------------------------------------------------------
def test_preset_efficientnetv2_s_paper_and_automl():
    s = pl.load_schedule("efficientnetv2-s")
    rows = pl.plan(s)
    assert [(r.epoch_start, r.epoch_end) for r in rows] == [(0, 87), (87, 175), (175, 262),
                                                            (262, 350)]
    assert [r.image_size for r in rows] == [128, 185, 242, 300]
    assert [r.values["randaug_magnitude"] for r in rows] == [5, 8.3333333333, 11.6666666667, 15]
    assert [r.values["dropout"] for r in rows] == [0.1, 0.1666666667, 0.2333333333, 0.3]
    assert [r.values["mixup_alpha"] for r in rows] == [0, 0, 0, 0]
    assert s.image_size.eval_size == 384
    automl = pl.load_schedule("efficientnetv2-s-automl")
    assert [r.image_size for r in pl.plan(automl)] == [171, 214, 257, 300]
    assert "dropout" not in automl.knobs.ramps()  # the released code does not schedule dropout


@pytest.mark.parametrize(("name", "sizes", "ra", "mixup", "dropout", "eval_size"), [
    ("efficientnetv2-m", [128, 212, 296, 380], (5, 20), (0, 0.2), (0.1, 0.4), 480),
    ("efficientnetv2-l", [128, 212, 296, 380], (5, 25), (0, 0.4), (0.1, 0.5), 480),
    ("efficientnetv2-m-automl", [192, 256, 320, 384], (5, 15), (0, 0.2), None, 480),
    ("efficientnetv2-l-automl", [192, 256, 320, 384], (5, 20), (0, 0.5), None, 480),
    ("efficientnetv2-xl-automl", [192, 256, 320, 384], (5, 20), (0, 0.5), None, 512),
])
def test_other_presets(name, sizes, ra, mixup, dropout, eval_size):
    s = pl.load_schedule(name)
    rows = pl.plan(s)
    assert [r.image_size for r in rows] == sizes
    assert (rows[0].values["randaug_magnitude"], rows[-1].values["randaug_magnitude"]) == ra
    assert (rows[0].values["mixup_alpha"], rows[-1].values["mixup_alpha"]) == mixup
    if dropout is None:
        assert "dropout" not in rows[0].values
    else:
        assert (rows[0].values["dropout"], rows[-1].values["dropout"]) == dropout
    assert s.image_size.eval_size == eval_size
    assert (s.epochs, s.stages) == (350, 4)


def test_every_preset_listed_and_loadable():
    names = pl.list_presets()
    assert {"efficientnetv2-s", "efficientnetv2-m", "efficientnetv2-l"} <= set(names)
    for name in names:
        assert isinstance(pl.load_schedule(name), Schedule)
