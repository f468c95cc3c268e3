"""Variant allocation: Thompson sampling follows the reward, sessions keep their variant."""

from collections import Counter

from persona.bandit import VARIANTS, allocation, choose


def test_a_session_always_gets_the_same_variant():
    stats = {"balanced": (5, 100), "focused": (6, 100), "popular": (4, 100)}
    for s in ("s-1", "s-2", "s-3"):
        assert len({choose(s, stats) for _ in range(20)}) == 1


def test_thompson_sampling_sends_most_sessions_to_the_best_variant():
    stats = {"balanced": (5, 500), "focused": (60, 500), "popular": (5, 500)}
    picks = Counter(choose(f"s-{i}", stats, explore=0.1) for i in range(2000))
    assert picks["focused"] > 0.85 * 2000
    assert picks["balanced"] > 0 and picks["popular"] > 0, "exploration keeps every variant alive"


def test_without_data_sessions_spread_over_all_variants():
    picks = Counter(choose(f"s-{i}", {}) for i in range(3000))
    assert set(picks) == set(VARIANTS)
    assert min(picks.values()) > 3000 / len(VARIANTS) * 0.7


def test_a_fixed_ab_split_ignores_the_reward():
    skewed = {"balanced": (0, 1000), "focused": (500, 1000), "popular": (0, 1000)}
    picks = Counter(choose(f"s-{i}", skewed, mode="ab") for i in range(3000))
    assert min(picks.values()) > 3000 / len(VARIANTS) * 0.8


def test_allocation_shares_sum_to_one_and_rank_by_reward():
    a = allocation({"balanced": (1, 100), "focused": (20, 100), "popular": (2, 100)})
    assert abs(sum(v["share"] for v in a.values()) - 1) < 1e-9
    assert a["focused"]["share"] > a["popular"]["share"] and a["focused"]["mean_ctr"] > 0.15
