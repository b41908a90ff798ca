"""benchmarks/decoder_probe.py: fresh decoders on a frozen encoder, for the barycentres."""

from __future__ import annotations

import sys

import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO))


def test_decoder_probe_quick_run_scores_each_decoder(tmp_path):
    """benchmarks/decoder_probe.py --quick: fresh decoders on a frozen encoder, each scored
    by held-out reconstruction and the barycentre objective, with a PNG of barycentres."""
    import json
    import subprocess

    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "decoder_probe.py"),
                           "--quick", "--output", str(tmp_path / "dp")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "dp.json").read_text())
    assert [row["knobs"] for row in result["rows"]] == [{}, {"groups": 3}]
    for row in result["rows"]:
        assert row["reconstruction"] > 0 and row["barycentre_objective"] > 0
        assert len(row["barycentres"]) == 10  # one per digit class
    assert (tmp_path / "dp.png").stat().st_size > 0


def test_decoder_probe_rejects_an_unknown_knob():
    from benchmarks.decoder_probe import parse_variant

    assert parse_variant("wide: layers=2, epsilon=0.002") == ("wide", {"layers": 2,
                                                                       "epsilon": 0.002})
    with pytest.raises(ValueError, match="unknown knob 'width'"):
        parse_variant("wide: width=2")
