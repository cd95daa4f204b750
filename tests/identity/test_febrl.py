"""FEBRL accuracy: fails when the matching model gets worse (pairwise F1, clustered)."""

from __future__ import annotations

import pytest
from identity import febrl

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("link", "with_ssid", "target"),
    [
        (False, True, 0.99),  # dataset3 dedupe
        (True, True, 0.99),  # dataset4a + 4b link
        (False, False, 0.98),  # without soc_sec_id (reference model: 0.963)
        (True, False, 0.98),  # without soc_sec_id (reference model: 0.986)
    ],
)
def test_febrl_f1(link: bool, with_ssid: bool, target: float) -> None:
    pairwise, clustered = febrl.run(link=link, with_ssid=with_ssid)
    assert clustered.f1 >= target, clustered
    assert pairwise.f1 >= target, pairwise
    assert clustered.precision >= 0.99
