"""Sampling rules (pipelines.sources.sampling): validation, order, caps, determinism, canary."""

from __future__ import annotations

import uuid

from pipelines.sources.sampling import (
    Signals,
    decide,
    is_thumbs_down,
    rule_room,
    rules_stored,
    rules_validate,
    traces_sampled,
)
from pipelines.sources.traces import trace_sampled


def rules(*raw: dict) -> list:
    parsed, errors = rules_validate(list(raw))
    assert errors == []
    return parsed


def test_rules_are_validated_field_by_field() -> None:
    _, errors = rules_validate(
        [
            {"kind": "percent", "percent": 0},
            {"kind": "nope"},
            {"kind": "score_below", "name": "groundedness"},
            {"kind": "match", "key": "env", "value": "prod", "colour": "red"},
            {"kind": "error", "max_per_hour": 0},
        ]
    )
    fields = [e["field"] for e in errors]
    assert fields == [
        "rules[0].percent",
        "rules[1].kind",
        "rules[2].threshold",
        "rules[3].colour",
        "rules[4].max_per_hour",
    ]
    assert "above 0" in errors[0]["message"] and "percent" in errors[1]["message"]
    assert rules_validate({"kind": "error"})[1][0]["field"] == "rules"


def test_labels_default_per_kind_and_must_be_unique() -> None:
    parsed = rules(
        {"kind": "thumbs_down"},
        {"kind": "percent", "percent": 5},
        {"kind": "score_below", "name": "g", "threshold": 0.5},
    )
    assert [r.label for r in parsed] == ["thumbs_down", "percent:5", "score_below:g"]
    assert rules_stored(parsed)[1] == {"kind": "percent", "percent": 5.0, "label": "percent:5"}
    _, errors = rules_validate([{"kind": "error"}, {"kind": "error"}])
    assert errors[0]["field"] == "rules[1].label"


def test_the_first_rule_that_takes_a_row_names_it() -> None:
    ordered = rules(
        {"kind": "thumbs_down"},
        {"kind": "error"},
        {"kind": "score_below", "name": "groundedness", "threshold": 0.5},
        {"kind": "match", "key": "env", "value": "prod"},
        {"kind": "canary"},
    )
    canary = frozenset({("support-assistant", "3")})

    def label(**signals: object) -> str | None:
        return decide(ordered, Signals(trace_id="t", **signals), canary=canary).rule  # type: ignore[arg-type]

    assert label(thumbs_down=True, error=True) == "thumbs_down"
    assert label(error=True, scores={"groundedness": 0.1}) == "error"
    assert label(scores={"groundedness": 0.1}) == "score_below:groundedness"
    assert label(scores={"groundedness": 0.5}) is None  # not below
    assert label(tags={"env": "prod"}) == "match:env"
    assert label(tags={"env": "dev"}) is None
    assert label(model_name="support-assistant", model_version="3") == "canary"
    assert label(model_name="other-model", model_version="3") is None
    assert label(model_version="3") == "canary"  # no model name on the row: the version decides
    assert decide([], Signals(trace_id="t")).rule == "all"


def test_a_full_cap_lets_the_row_fall_through_and_counts_as_capped() -> None:
    ordered = rules({"kind": "thumbs_down", "max_per_hour": 2}, {"kind": "percent", "percent": 100, "max_per_day": 1})
    room = {"thumbs_down": 2, "percent:100": 1}
    taken = [decide(ordered, Signals(trace_id=f"t{n}", thumbs_down=True), room=room) for n in range(4)]
    assert [d.rule for d in taken] == ["thumbs_down", "thumbs_down", "percent:100", None]
    assert taken[3].capped
    assert decide(ordered, Signals(trace_id="x"), room={"thumbs_down": 0, "percent:100": 5}).rule == "percent:100"
    assert rule_room(ordered[0], taken_last_hour=5, taken_last_day=5) == 0
    assert rule_room(ordered[1], taken_last_hour=0, taken_last_day=0) == 1
    both = rules({"kind": "error", "max_per_hour": 10, "max_per_day": 12})[0]
    assert rule_room(both, taken_last_hour=3, taken_last_day=9) == 3


def test_percent_is_deterministic_and_a_higher_percent_takes_a_superset() -> None:
    ids = [uuid.uuid4().hex for _ in range(2000)]

    def taken(percent: float) -> set[str]:
        ordered = rules({"kind": "percent", "percent": percent})
        return {t for t in ids if decide(ordered, Signals(trace_id=t)).rule}

    five, five_again, twenty, hundred = taken(5), taken(5), taken(20), taken(100)
    assert five == five_again
    assert five <= twenty <= hundred == set(ids)
    assert 40 < len(five) < 170 and 300 < len(twenty) < 500  # ~100 and ~400 of 2000
    assert decide(rules({"kind": "percent", "percent": 100}), Signals(trace_id="")).rule is None  # no id, no hash


def test_thumbs_down_values() -> None:
    for value in (False, "thumbs_down", "DOWN", "\U0001f44e", 0, -1, {"rating": "negative"}):
        assert is_thumbs_down(value), value
    for value in (True, "thumbs_up", 1, 5, None, {"rating": "positive"}):
        assert not is_thumbs_down(value), value


def test_sampling_a_column_of_ids_decides_as_trace_sampled_on_each() -> None:
    ids = [str(uuid.uuid4()) for _ in range(5000)] + [f"tr-{n:09d}" for n in range(5000)]
    ids += ["x", "é✓", "0", "tr-" + "f" * 32, "a b"]
    for rate in (0.0001, 0.01, 0.05, 0.3333, 0.5, 0.99, 1.0):
        assert traces_sampled(ids, rate) == [trace_sampled(i, rate) for i in ids]
    assert 400 < sum(traces_sampled(ids, 0.05)) < 600  # about 5% of 10,000: the test can tell a wrong hash
    assert traces_sampled([None, ""], 1.0) == [False, False]  # no id: not sampled (as Signals with no trace id)
