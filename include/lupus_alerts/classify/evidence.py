"""A label's total from its cue mentions in one place (repeats add a little, a list of drugs
counts about as much as its strongest) and the evidence shown for it, decisive cues first."""

from __future__ import annotations

from lupus_alerts.classify.cues import _Acc

REPEAT_BONUS = 0.25  # each repeat of a cue adds a quarter of its weight...
REPEAT_CAP = 2  # ...for at most two repeats
# A cue lighter than this says little on its own ("urinary", "outcomes", "treatment"): it is
# quoted as evidence only when nothing heavier was found in the same place.
EVIDENCE_MIN_WEIGHT = 0.5
# Abstracts list the patients' treatment ("on hydroxychloroquine, mycophenolate and
# prednisone"): a list of drugs says no more about the subject than its strongest member, so
# every further drug adds only this fraction of its contribution.
DRUG_LIST_EXTRA = 0.25


def _quote_list(items: list[str]) -> str:
    q = [f"'{x}'" for x in items]
    return q[0] if len(q) == 1 else ", ".join(q[:-1]) + " and " + q[-1]


def _add_mentions(
    acc: dict[str, _Acc], found: dict[str, dict[str, list[float]]], where: str, *, context: bool, rank: int
) -> None:
    """Each label's total from its mentions (repeats add a little, drug lists count once) and evidence."""
    for lid, per in found.items():
        total = 0.0
        ranked = []
        drug_parts = []
        for shown, (c, n, is_drug, w) in per.items():
            contribution = c * (1 + REPEAT_BONUS * min(n - 1, REPEAT_CAP))
            if is_drug and context:
                drug_parts.append(contribution)
            else:
                total += contribution
            ranked.append((w >= EVIDENCE_MIN_WEIGHT, contribution, shown))
        if drug_parts:
            drug_parts.sort(reverse=True)
            total += drug_parts[0] + DRUG_LIST_EXTRA * sum(drug_parts[1:])
        # The evidence names the cues that decide: a weak word ("urinary", "outcomes") is
        # shown only when nothing stronger was found there.
        ranked.sort(key=lambda r: (not r[0], -r[1]))
        a = acc[lid]
        a.raw += total
        if context:
            a.cues += len(per)
        strong = [s for ok, _c, s in ranked if ok]
        top = (strong or [s for _ok, _c, s in ranked])[:3]
        text = f"{_quote_list(top)} in {where}"
        a.parts.append((rank, total, text))
        if not strong:
            a.weak.add(text)
