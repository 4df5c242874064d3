"""Held-out seeds (cbft_core.study.heldout) and chapter 6's verdicts on them."""
import json

import pytest
from test_claims import results

from cbft_core.errors import ConfigError
from cbft_core.presentation.pages import ch06
from cbft_core.study import claims, documents, heldout, presets


@pytest.fixture
def held_file(monkeypatch, tmp_path):
    """Point the module at a temporary file; returns a writer of documents."""
    path = tmp_path / heldout.HELDOUT_FILE
    monkeypatch.setattr(heldout, "_path", lambda: path)
    heldout.load.cache_clear()

    def write(doc):
        path.write_text(json.dumps(doc))
        heldout.load.cache_clear()
    yield write
    heldout.load.cache_clear()


def doc_with(box, seeds=(3, 4, 5)):
    """A held-out document whose box results are a complete (checksummed) results.json with ``box``'s numbers."""
    body = {k: v for k, v in box.items() if k != "lmc"} | {"preset": "cpu", "cue": "box", "seeds": list(seeds)}
    return {"format": heldout.FORMAT, "preset": "cpu", "seeds": list(seeds),
            "results": {"box": documents.complete(documents.RESULTS, body)}}


def test_a_missing_file_is_said_and_a_bad_one_is_one_clear_error(held_file):
    cfg = presets.get("cpu")
    assert heldout.load() is None and ch06.heldout_rows({}, cfg) == []
    assert "not been measured" in ch06.heldout_findings({}, cfg)
    held_file({"format": "other"})
    with pytest.raises(ConfigError, match="heldout.json: expected"):
        heldout.load()
    held_file(doc_with(results()) | {"seeds": [5]})
    with pytest.raises(ConfigError, match="do not belong to 'box' on seeds"):
        heldout.load()
    tampered = doc_with(results())
    tampered["results"]["box"]["paths"]["cue-nocue"]["barrier"][0] = 9.0
    held_file(tampered)
    with pytest.raises(ConfigError, match="results for 'box': checksum mismatch"):
        heldout.load()


def test_rows_and_findings_compare_the_verdicts_with_this_run(held_file):
    cfg = presets.get("cpu", seeds=[0, 1, 2])
    ours = {"box": claims.evaluate_all(results())}  # every claim holds on "this run"
    failing = results(**{"paths__nocue-nocue": {"barrier": [0.3, 0.3, 0.3]}})  # the mechanism barrier fails
    held_file(doc_with(failing))
    rows = ch06.heldout_rows(ours, cfg)
    by_claim = {r["claim"]: r for r in rows}
    mech = claims.claim("mechanism-barrier").statement
    assert by_claim[mech]["seeds 0, 1, 2"] == "holds" and by_claim[mech]["seeds 3, 4, 5"] == "does not hold"
    assert all(not c.reported for c in map(claims.claim, claims.CLAIMS) if c.statement in by_claim)
    text = ch06.heldout_findings(ours, cfg)
    checked = [o for o in claims.evaluate_all(heldout.load()["results"]["box"]) if o.holds is not None]
    assert f"{len(checked) - 1} of {len(checked)} checked claims hold on box" in text
    assert f"*{mech}* on box (holds on seeds 0, 1, 2, does not hold on seeds 3, 4, 5)" in text
    held_file(doc_with(results()))
    assert "Every verdict is the same" in ch06.heldout_findings(ours, cfg)
    tiny = presets.get("tiny")  # another preset: only the held-out verdicts, no comparison
    assert all(list(r) == ["data", "claim", "seeds 3, 4, 5", "measured on the held-out seeds"]
               for r in ch06.heldout_rows(ours, tiny))
