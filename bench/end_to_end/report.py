"""Part A's report: the phases' table, where the CPU went, and the verdict on the target.

The target is judged on click-to-view (from when the click was due, so a queue anywhere,
the API's included, counts) and only for a load that was sustained: PASS needs both.
"""

from __future__ import annotations

from argparse import Namespace

from bench.common.loadgen import percentile
from bench.end_to_end.capacity import format_capacity
from bench.end_to_end.cpu import format_usage
from bench.end_to_end.latency import Phase
from bench.end_to_end.stages import format_stages

TARGET_P99_MS = 150.0


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.0f}" if values else "-"


def probe_note(args: Namespace) -> str:
    if args.probe == "sql":
        return f"SQL probe process polling sync_status every {args.interval_ms:g} ms"
    return "GET /sync/status?min_version=V (API re-reads every 20 ms)"


def print_latency(phases: list[Phase], args: Namespace) -> None:
    print(f"\nA. click-to-view: click (POST due) -> view shows its version ({probe_note(args)})")
    print(
        f"{'phase':<9}{'offered':>8}{'sent/s':>7}{'answ/s':>7}{'unansw':>7}{'late':>6}"
        f"{'failed':>7} | {'POST p50':>8}{'p99':>7} | {'view n':>6}{'p50':>6}{'p95':>6}"
        f"{'p99':>6}{'max':>7}{'unseen':>7} | {'answ->view p50':>14}{'p99':>6}"
    )
    for p in phases:
        c, v, k = p.clicks, p.view, p.capacity
        top = f"{max(v.latencies_ms):.0f}" if v.latencies_ms else "-"
        print(
            f"{p.name:<9}{p.rate:>8g}{k.sent_rate:>7.0f}{k.achieved:>7.0f}{k.outstanding:>7}"
            f"{k.late:>6}{k.failed:>7} | {ms(c.post_ms, 50):>8}{ms(c.post_ms, 99):>7} | "
            f"{len(v.latencies_ms):>6}{ms(v.latencies_ms, 50):>6}{ms(v.latencies_ms, 95):>6}"
            f"{ms(v.latencies_ms, 99):>6}{top:>7}{v.unseen:>7} | "
            f"{ms(v.answer_ms, 50):>14}{ms(v.answer_ms, 99):>6}"
        )
    print(
        "  (ms; answ/s: 202s inside the window; unansw: no answer yet when the window ended;"
        " late: 202s after it)"
    )
    for p in phases:
        print_details(p)
    print(f"  target click-to-view p99 < {TARGET_P99_MS:g} ms: {verdict(phases[-1])}")


def print_details(p: Phase) -> None:
    """Sustained or not and why, send lag, errors, CPU and (--stages) the stages."""
    lag, c = p.clicks.send_lag_ms, p.clicks
    extra = f", probe rounds {p.view.rounds}, query {p.view.query_ms:.2f} ms" * bool(p.view.rounds)
    print(f"  {p.name}: {format_capacity(p.capacity)}")
    print(
        f"    {c.started} started a task, {c.reused} joined one; send lag p50/p99 "
        f"{ms(lag, 50)}/{ms(lag, 99)} ms, {c.connections} connections{extra}; "
        f"errors {dict(c.errors) or 'none'}, abandoned {c.abandoned}"
    )
    print(f"    CPU while clicking (% of one core): {format_usage(p.cpu)}")
    if p.stages:
        print(f"    {format_stages(p.stages)}")


def target_met(phase: Phase) -> tuple[bool, str]:
    """Click-to-view p99 under the target, with every sampled click answered and seen."""
    v, c = phase.view, phase.clicks
    if not v.latencies_ms:
        return False, "no click seen in the view"
    p99 = percentile(v.latencies_ms, 99)
    problems = [f"click-to-view p99 {p99:.0f} ms"] if p99 >= TARGET_P99_MS else []
    failed = sum(c.errors.values()) + c.abandoned
    if failed or v.unseen:
        problems.append(f"{failed} clicks failed, {v.unseen} never seen")
    return not problems, "; ".join(problems) or f"click-to-view p99 {p99:.0f} ms"


def verdict(phase: Phase) -> str:
    """PASS only if the target holds and the load was sustained; else MISS with the reasons."""
    met, figures = target_met(phase)
    k = phase.capacity
    if met and k.sustained:
        return f"PASS ({figures} at {phase.rate:g}/s, sustained)"
    reasons = [] if met else [figures]
    if not k.sustained:
        reasons.append("not sustained: " + "; ".join(k.reasons))
    return f"MISS ({'; '.join(reasons)}) at {phase.rate:g}/s"
