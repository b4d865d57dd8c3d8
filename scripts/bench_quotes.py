"""Which claims a draft quotes under each measurement, scored against labels: is the quote about that experiment?

    .venv/bin/python scripts/bench_quotes.py            # precision of the quotes, gold and holdout rambles
    .venv/bin/python scripts/bench_quotes.py --errors   # also list the quotes that are about something else

Every transcript of tests/data/structure_gold and structure_holdout whose claim sentences are labelled (the
38 of stop 30; the rambles added at stop 35 are not), plus the unseen rambles of tests/data/claims/quoted/
(written and spoken after the rules), is run through detection; each detected experiment gets the stored quick-run result of
tests/data/results/<experiment>.json and quotes what ``publish.measurements.claims_for`` picks
(with the ramble's other detected experiments as rivals, as in a draft). A quote is right when
tests/data/claims/quoted/labels.jsonl lists that experiment for the sentence: 350 claim
sentences labelled by a helper who read each ramble, blind to the rules (README there).
The rules were changed looking at the gold rambles; holdout and unseen are reported. The second table:
experiments detected, and those `ramble2post` measures (``pipeline_hook.with_claims``: only where the ramble
claims something the experiment can test), each with how many the labels back.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
QUOTED = DATA / "claims" / "quoted"


def rambles() -> list[tuple[str, str, Path]]:
    """(name, split, transcript path) for every labelled ramble."""
    out = [(p.parent.name, "gold", p) for p in sorted((DATA / "structure_gold").glob("*/transcript.json"))]
    out += [(p.parent.name, "holdout", p) for p in sorted((DATA / "structure_holdout").glob("*/transcript.json"))]
    out += [(p.parent.name, "holdout", p) for p in sorted(QUOTED.glob("*/transcript.json"))]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--errors", action="store_true", help="list quotes about another subject")
    args = ap.parse_args()
    from ramble2post.experiments.claims import Claim
    from ramble2post.experiments.detect import detect_experiments
    from ramble2post.experiments.verdicts import judge
    from ramble2post.publish.measurements import claims_for
    from ramble2post.records import Transcript

    labels = {}
    for line in (QUOTED / "labels.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            o = json.loads(line)
            labels[(o["ramble"], o["text"])] = set(o["experiments"])
    stored = {p.stem: json.loads(p.read_text()) for p in (DATA / "results").glob("*.json")}
    try:
        from ramble2post.experiments.pipeline_hook import with_claims
    except ImportError:  # code from before stop 29 runs every detected experiment
        with_claims = None
    backing = {}  # ramble -> the experiments its labels name
    for (ramble, _text), names in labels.items():
        backing.setdefault(ramble, set()).update(names)
    score = {"gold": [0, 0, 0], "holdout": [0, 0, 0]}  # quoted, right, experiments detected
    runs = {"gold": [0, 0, 0, 0], "holdout": [0, 0, 0, 0]}  # detected, of them labelled, run, of them labelled
    wrong = []
    labelled = {ramble for ramble, _text in labels}  # rambles added since (stop 35's gold) carry no claim labels
    for name, split, path in (r for r in rambles() if r[0] in labelled):
        t = Transcript.from_dict(json.loads(path.read_text()))
        results = []
        for d in detect_experiments(transcript=t):
            if d.experiment in stored:
                r = {k: v for k, v in stored[d.experiment].items() if k not in ("claim", "claims")}
                results.append({**r, "detection": d.to_dict()})
        score[split][2] += len(results)
        found = detect_experiments(transcript=t)
        run = with_claims(found, transcript=t)[0] if with_claims else found
        own = backing.get(name, set())
        runs[split][0] += len(found)
        runs[split][1] += sum(d.experiment in own for d in found)
        runs[split][2] += len(run)
        runs[split][3] += sum(d.experiment in own for d in run)
        for r in results:
            for c in claims_for(r, t.segments, rivals=results):
                ok = r["experiment"] in labels.get((name, c["text"]), set())
                score[split][0] += 1
                score[split][1] += ok
                if not ok:
                    v = judge(r, Claim.from_dict(c))
                    wrong.append(
                        f"  {name[:22]:<22} {r['experiment'][:20]:<20} {v.verdict if v else '-':<28} {c['text'][:90]}"
                    )
    print(f"{'rambles':<10} {'experiments detected':>20} {'claims quoted':>14} {'about it':>9} {'precision':>9}")
    for split, (n, ok, det) in score.items():
        print(f"{split:<10} {det:>20} {n:>14} {ok:>9} {ok / max(n, 1):>9.2f}")
    print(f"\n{'rambles':<10} {'detected':>9} {'labelled':>9} {'measured':>9} {'labelled':>9}")
    for split, (det, det_ok, ran, ran_ok) in runs.items():
        print(f"{split:<10} {det:>9} {det_ok:>9} {ran:>9} {ran_ok:>9}")
    if args.errors:
        print("\nquoted under a measurement they are not about:")
        print("\n".join(wrong))
    return 0


if __name__ == "__main__":
    sys.exit(main())
