#!/usr/bin/env python3
"""docs/results.md from the reports of `popsteer run` on several datasets (scripts/reproduce.sh).

usage: results_md.py --out docs/results.md --runs RUNS_DIR NAME [NAME ...]

Reads RUNS_DIR/NAME/report/results.json for every NAME and writes one markdown page: per dataset
the statistics, plain SASRec's test accuracy, every method's selected operating point (SPEC §7
rule, chosen on validation, shown on test) with the bootstrap intervals, the largest Gini
reduction each method reaches within 0.5 % and within 1 % NDCG@10 loss, ILAD, the comparison of
the Pareto fronts, and the Pareto plot (copied next to the page). Every sentence about a result
is built from the numbers, so the page says what the data shows, including where PopSteer loses.
Standard library only.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

TITLES = {
    "lastfm": "Last.fm (PopSteer's, with the authors' SASRec)",
    "ml-100k": "MovieLens 100K (5-core)",
    "beauty": "Amazon Beauty (S3-Rec 5-core)",
    "yelp": "Yelp (S3-Rec 5-core)",
}
BUDGETS = (0.005, 0.01)
STEERING = ("popsteer", "popsteer-u", "popsteer-i")
# this project's rules (docs/steering.md), reported next to the paper's
RULES = (("popsteer-u", "PopSteer-U"), ("popsteer-i", "PopSteer-I"))
# PopSteer's ablations (include/popsteer/sweep.h): what each one removes, for its findings sentence
ABLATIONS = {
    "ps-random": "random latents with PopSteer's weights",
    "ps-unweighted": "PopSteer's latents, every weight alpha",
    "ps-conditional": "PopSteer's plan, shifted only for users beyond the other synthetic group's mean + 2 sd",
    "ps-direction": "no SAE, h moved along the long-tail minus popular mean user vector",
    "ps-mean": "PopSteer-I without SAE or probe: h moved from the users' mean vector towards 0",
}
# the rule each ablation takes apart (its results.json key and name); the others take apart PopSteer's
ABLATION_REF = {"ps-mean": ("popsteer_i_front_vs_this", "PopSteer-I")}


def is_steering(name):
    """PopSteer, PopSteer-U, PopSteer-I and the ablations ("ps-..."): steering methods, never baselines."""
    return name in STEERING or name.startswith("ps-")


REFS = (("popsteer_front_vs_this", "PopSteer (the paper's rule)"),
        ("popsteer_u_front_vs_this", "PopSteer-U (this project's per-user rule, docs/steering.md)"),
        ("popsteer_i_front_vs_this", "PopSteer-I (this project's item-side rule, docs/steering.md)"))


def fail(msg):
    sys.stderr.write("results_md: %s\n" % msg)
    sys.exit(1)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail("%s: %s" % (path, e))


def pct(x):
    return "n/a" if x is None else "%+.2f %%" % (100 * x)


def pct_ci(x, ci):
    """'−10.36 % [−11.90, −8.80]', with ' ≈' when the interval contains 0."""
    if x is None:
        return "n/a"
    if not ci:
        return pct(x)
    lo, hi = ci
    return "%s [%+.2f, %+.2f]%s" % (pct(x), 100 * lo, 100 * hi, " ≈" if lo <= 0 <= hi else "")


class Run:
    def __init__(self, name, res):
        self.name = name
        self.res = res
        self.k = res["k"]
        self.points = res["points"]
        self.methods = res["methods"]
        self.base = self.points[0]
        assert self.base["method"] == "sasrec", "the first point must be plain SASRec"

    def key(self, metric):
        return "%s@%d" % (metric, self.k)

    def val(self, i, split, metric):
        return self.points[i][split].get(self.key(metric))

    def rel(self, i, split, metric):
        b = self.val(0, split, metric)
        x = self.val(i, split, metric)
        if b is None or x is None or b <= 0:
            return None
        return x / b - 1

    def ci(self, i, split, what):
        iv = self.points[i].get("intervals_vs_sasrec", {}).get(split, {})
        return iv.get(what)

    def method_points(self, m):
        """Indices of a method's points (popsteer's α = 0 point included)."""
        return [i for i, p in enumerate(self.points) if p["method"] == m["method"]]

    def best_within(self, m, budget):
        """The largest relative Gini cut on validation with an NDCG drop <= budget, or None."""
        best = None
        for i in self.method_points(m):
            dn, dg = self.rel(i, "valid", "ndcg"), self.rel(i, "valid", "gini")
            if dn is None or dg is None or -dn > budget + 1e-12:
                continue
            if best is None or dg < self.rel(best, "valid", "gini") - 1e-12:
                best = i
        return best

    def setting(self, i):
        return self.points[i]["setting"] or "default"


def table(headers, rows):
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return "\n".join(out) + "\n"


def stats_text(run):
    st = run.res.get("dataset", {})
    sl = st.get("sequence_length", {})
    return ("%s users, %s items (%s head / %s mid / %s tail), %s interactions; sequence length median %s, "
            "mean %.1f; evaluated on %s users per split, full ranking of all items."
            % (st.get("users"), st.get("items"), st.get("head_items"), st.get("mid_items"), st.get("tail_items"),
               st.get("interactions"), sl.get("median"), sl.get("mean", float("nan")), run.res.get("users")))


def selected_table(run, has_feat):
    hdr = ["method", "selected setting", "NDCG@%d" % run.k, "ΔNDCG [95 % CI]", "Gini@%d" % run.k,
           "ΔGini [95 % CI]", "ILAD@%d" % run.k]
    if has_feat:
        hdr.append("ILAD genres@%d" % run.k)
    rows = []

    def row(label, i):
        if i is None:
            rows.append([label, "no point within the 5 % budget"] + ["-"] * (len(hdr) - 2))
            return
        r = [label, run.setting(i) if i else "-", "%.4f" % run.val(i, "test", "ndcg"),
             pct_ci(run.rel(i, "test", "ndcg"), run.ci(i, "test", "rel_ndcg_change")) if i else "(reference)",
             "%.4f" % run.val(i, "test", "gini"),
             pct_ci(run.rel(i, "test", "gini"), run.ci(i, "test", "rel_gini_change")) if i else "(reference)",
             "%.4f" % (run.val(i, "test", "ilad") or float("nan"))]
        if has_feat:
            r.append("%.4f" % (run.val(i, "test", "ilad_features") or float("nan")))
        rows.append(r)

    row("sasrec", 0)
    for m in run.methods:
        row(m["method"], m["selected"])
    return table(hdr, rows)


def budget_table(run):
    hdr = ["method"]
    for b in BUDGETS:
        hdr += ["≤ %.1f %% loss: setting" % (100 * b), "valid ΔGini", "test ΔGini [95 % CI]",
                "test ΔNDCG [95 % CI]"]
    rows = []
    for m in run.methods:
        r = [m["method"]]
        for b in BUDGETS:
            i = run.best_within(m, b)
            if i is None:
                r += ["none", "-", "-", "-"]
                continue
            r += [run.setting(i), pct(run.rel(i, "valid", "gini")),
                  pct_ci(run.rel(i, "test", "gini"), run.ci(i, "test", "rel_gini_change")),
                  pct_ci(run.rel(i, "test", "ndcg"), run.ci(i, "test", "rel_ndcg_change"))]
        rows.append(r)
    return table(hdr, rows)


def fronts_table(run, key, name):
    rows = []
    for m in run.methods:
        if key not in m:
            continue
        v = m[key]
        ci = v.get("mean_ndcg_diff_ci")
        gap = ("%+.4f [%+.4f, %+.4f]" % (v["mean_ndcg_diff"], ci[0], ci[1]) if v.get("common_gini_range") and ci
               else "-")
        rows.append([m["method"], v.get("verdict", "?") + ("; within noise" if v.get("within_noise") and
                                                            v.get("common_gini_range") else ""),
                     "%d of %d" % (v.get("dominated_by_popsteer", 0), v.get("front_points", 0)),
                     "%.4f–%.4f" % (v["gini_lo"], v["gini_hi"]) if v.get("common_gini_range") else "none", gap,
                     "%.0f %%" % (100 * v["share_above"]) if v.get("common_gini_range") else "-"])
    return table(["method", "%s's front vs this one" % name, "its front points %s dominates" % name,
                  "common Gini range", "NDCG gap at equal Gini (%s − it) [95 %% CI]" % name,
                  "share of range %s ≥" % name], rows)


def reach(run, m, b):
    """'lowers Gini@10 by 12.3 % (setting; test ...)' for method m's largest cut within budget b."""
    i = run.best_within(m, b)
    cut = run.rel(i, "valid", "gini") if i is not None else None
    if cut is None or cut >= 0:
        return None, "does not lower Gini@%d at all" % run.k
    return cut, "lowers Gini@%d by %.1f %% (%s; test %s)" % (
        run.k, -100 * cut, run.setting(i), pct_ci(run.rel(i, "test", "gini"), run.ci(i, "test", "rel_gini_change")))


def ablation_findings(run):
    """One sentence per ablation: its front against the rule's it takes apart (results.json)."""
    out = []
    for m in run.methods:
        key, ref = ABLATION_REF.get(m["method"], ("popsteer_front_vs_this", "PopSteer"))
        v = m.get(key)
        if m["method"] not in ABLATIONS or not v:
            continue
        s = "%s (%s): %s's front vs its is %s (%d of %d of its front points dominated" % (
            m["method"], ABLATIONS[m["method"]], ref, v.get("verdict", "?"), v.get("dominated_by_popsteer", 0),
            v.get("front_points", 0))
        ci = v.get("mean_ndcg_diff_ci")
        if v.get("common_gini_range"):
            s += "; mean NDCG@%d gap at equal Gini %+.4f" % (run.k, v["mean_ndcg_diff"])
            if ci:
                s += " [%+.4f, %+.4f]" % (ci[0], ci[1])
        s += ")"
        if v.get("within_noise") and v.get("common_gini_range"):
            s += ": on these users the two cannot be told apart"
        elif v.get("verdict") in ("above", "above on the common Gini range"):
            s += ": what it removes matters"
        elif v.get("verdict") == "below":
            s += ": it does better than %s" % ref
        out.append(s + ".")
    return out


def findings(run):
    """Plain sentences from the numbers: PopSteer's reach, the baselines that beat it, the noise."""
    out = []
    pop = run.methods[0]
    rules = [(next((m for m in run.methods if m["method"] == key), None), label) for key, label in RULES]
    for b in BUDGETS:
        i = run.best_within(pop, b)
        best_base, best_cut = None, 0.0
        for m in run.methods[1:]:
            if is_steering(m["method"]):
                continue
            j = run.best_within(m, b)
            if j is not None and run.rel(j, "valid", "gini") < best_cut:
                best_base, best_cut = (m["method"], j), run.rel(j, "valid", "gini")
        pop_cut = run.rel(i, "valid", "gini") if i is not None else None
        s = "Within %.1f %% NDCG@%d loss (validation), PopSteer " % (100 * b, run.k)
        if i is None or pop_cut >= 0:
            s += "does not lower Gini@%d at all" % run.k
        else:
            s += "lowers Gini@%d by %.1f %% (%s; test %s)" % (run.k, -100 * pop_cut, run.setting(i),
                                                              pct_ci(run.rel(i, "test", "gini"),
                                                                     run.ci(i, "test", "rel_gini_change")))
        if best_base:
            m, j = best_base
            s += "; the strongest baseline there is %s, %.1f %% (%s; test %s)" % (
                m, -100 * best_cut, run.setting(j),
                pct_ci(run.rel(j, "test", "gini"), run.ci(j, "test", "rel_gini_change")))
            if pop_cut is None or best_cut < pop_cut:
                s += ": **the baseline goes further than PopSteer**"
        else:
            s += "; no baseline lowers Gini within that budget"
        for rule, label in rules:
            if not rule:
                continue
            u_cut, u_text = reach(run, rule, b)
            s += "; %s %s" % (label, u_text)
            if u_cut is not None and u_cut < min(best_cut, pop_cut if pop_cut is not None else 0):
                s += ", further than PopSteer and every baseline"
        out.append(s + ".")
    for key, name in REFS:
        ref = name.split(" ")[0]
        below = [m["method"] for m in run.methods
                 if m.get(key, {}).get("verdict") in ("below", "crossing")]
        above = [m["method"] for m in run.methods
                 if m.get(key, {}).get("verdict") in ("above", "above on the common Gini range")]
        noise = [m["method"] for m in run.methods
                 if m.get(key, {}).get("within_noise") and m.get(key, {}).get("common_gini_range")]
        if below:
            out.append("%s's front is below or crosses the front of: %s." % (ref, ", ".join(below)))
        if above:
            out.append("%s's front is above that of: %s." % (ref, ", ".join(above)))
        if noise:
            out.append("The mean NDCG gap between %s's front and that of %s is within noise (its 95 %% interval "
                       "contains 0)." % (ref, ", ".join(noise)))
    out += ablation_findings(run)
    sae = next((i for i, p in enumerate(run.points) if p["method"] == "popsteer" and p.get("alpha") == 0), None)
    if sae is not None:
        out.append("The SAE-reconstructed model alone (α = 0) changes test NDCG@%d by %s and Gini@%d by %s." % (
            run.k, pct_ci(run.rel(sae, "test", "ndcg"), run.ci(sae, "test", "rel_ndcg_change")), run.k,
            pct_ci(run.rel(sae, "test", "gini"), run.ci(sae, "test", "rel_gini_change"))))
    return out


def cut_text(run, m, b):
    """'−10.4 % at −0.6 % (alpha=1 N=4096)' on test for m's largest validation cut within budget b."""
    i = run.best_within(m, b)
    if i is None or run.rel(i, "valid", "gini") >= 0:
        return "none"
    return "%s at %s (%s)" % (pct_ci(run.rel(i, "test", "gini"), run.ci(i, "test", "rel_gini_change")),
                              pct(run.rel(i, "test", "ndcg")), run.setting(i))


def summary_table(runs):
    """One row per dataset: what each steering rule and the best baseline reach within 1 % NDCG loss."""
    b = BUDGETS[1]
    rows = []
    for run in runs:
        by = {m["method"]: m for m in run.methods}
        best, best_cut = None, 0.0
        for m in run.methods:
            j = run.best_within(m, b)
            if is_steering(m["method"]) or j is None:
                continue
            if run.rel(j, "valid", "gini") < best_cut:
                best, best_cut = m, run.rel(j, "valid", "gini")
        verdict = "-"
        if best and "popsteer_front_vs_this" in best:
            v = best["popsteer_front_vs_this"]
            verdict = v["verdict"] + ("; within noise" if v.get("within_noise") and v.get("common_gini_range") else "")
        rows.append([TITLES.get(run.name, run.name), "%.4f" % run.val(0, "test", "ndcg"),
                     cut_text(run, by["popsteer"], b),
                     cut_text(run, by["popsteer-u"], b) if "popsteer-u" in by else "-",
                     cut_text(run, by["popsteer-i"], b) if "popsteer-i" in by else "-",
                     "%s: %s" % (best["method"], cut_text(run, best, b)) if best else "none",
                     verdict])
    return table(["dataset", "SASRec test NDCG@10", "PopSteer: test ΔGini@10 [CI] at ΔNDCG@10",
                  "PopSteer-U: test ΔGini@10 [CI] at ΔNDCG@10", "PopSteer-I: test ΔGini@10 [CI] at ΔNDCG@10",
                  "strongest baseline",
                  "PopSteer's front vs that baseline's"], rows)


def commit_of(repo):
    try:
        return subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--commit", help="the commit the popsteer binary was built from (default: git HEAD)")
    ap.add_argument("names", nargs="+")
    a = ap.parse_args()
    out_dir = os.path.dirname(os.path.abspath(a.out))
    img_dir = os.path.join(out_dir, "results")
    os.makedirs(img_dir, exist_ok=True)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parts = ["# PopSteer on four datasets\n",
             "Written by `make reproduce` (scripts/reproduce.sh → scripts/results_md.py) from the reports of "
             "`popsteer run` at commit %s. Every number is on the test split unless it says validation; changes "
             "are relative to plain SASRec on the same users; [lo, hi] is the 95 %% paired-bootstrap interval over "
             "the users (1,000 resamples; the measured change ± 1.96 bootstrap standard errors) and ≈ marks a change whose interval contains 0 (within noise). "
             "Operating points are chosen on validation: the SPEC §7 rule (NDCG drop ≤ 5 %%, maximise Gini cut − "
             "NDCG drop) and the largest Gini cut within 0.5 %% and 1 %% NDCG loss. Each dataset's full report "
             "(every grid point, both splits, all plots) is in reproduce-out/NAME/report/.\n" % (a.commit or commit_of(repo))]
    runs = [Run(name, load(os.path.join(a.runs, name, "report", "results.json"))) for name in a.names]
    parts.append("## Summary: the largest Gini reduction within 1 % NDCG@10 loss\n")
    parts.append("Chosen on validation, shown on test (change [95 % CI] at the NDCG change), per dataset. The "
                 "sections below have every method, the 0.5 % budget, the SPEC §7 operating points and the fronts.\n")
    parts.append(summary_table(runs))
    for run in runs:
        name, res = run.name, run.res
        has_feat = run.key("ilad_features") in run.base["test"]
        parts.append("## %s\n" % TITLES.get(name, name))
        parts.append(stats_text(run) + "\n")
        parts.append("Plain SASRec (test): NDCG@%d %.4f, Hit@%d %.4f, Gini@%d %.4f, ILAD@%d %.4f.\n" % (
            run.k, run.val(0, "test", "ndcg"), run.k, run.val(0, "test", "hit"), run.k, run.val(0, "test", "gini"),
            run.k, run.val(0, "test", "ilad") or float("nan")))
        parts.append("### What it shows\n")
        parts.append("\n".join("- " + s for s in findings(run)) + "\n")
        parts.append("### Selected operating points (SPEC §7 rule)\n")
        parts.append(selected_table(run, has_feat))
        parts.append("### Largest Gini reduction within a small NDCG loss\n")
        parts.append(budget_table(run))
        parts.append("### Pareto fronts (validation)\n")
        for key, ref_name in REFS:
            if any(key in m for m in run.methods):
                parts.append("%s:\n\n" % ref_name)
                parts.append(fronts_table(run, key, ref_name.split(" ")[0]))
        png = os.path.join(a.runs, name, "report", "pareto.png")
        if os.path.exists(png):
            shutil.copyfile(png, os.path.join(img_dir, "%s-pareto.png" % name))
            parts.append("\n![%s: NDCG@%d against Gini@%d, validation](results/%s-pareto.png)\n" % (
                name, run.k, run.k, name))
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
