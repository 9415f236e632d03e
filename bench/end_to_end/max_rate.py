"""--find-max: the highest click rate the stack sustains on the machine at hand.

On one warmed-up pipeline, short open-loop steps (--step-seconds each, a fresh population
of users each) at rising rates: from --find-from, times 1.5 per step, until the first step
that is not sustained (e2e_capacity.py); then --find-refine bisection steps between the
last sustained rate and the first that was not. Before each step the backlog of the one
before must drain. The whole search stops at --find-budget seconds; a step that would not
fit is not started.
"""

from __future__ import annotations

import time
from argparse import Namespace
from contextlib import ExitStack

from bench.common.services import libpq
from bench.end_to_end.capacity import wait_for_backlog
from bench.end_to_end.cpu import format_usage
from bench.end_to_end.latency import Phase, load_phase, start_measured
from bench.end_to_end.report import TARGET_P99_MS, ms, probe_note, target_met
from bench.end_to_end.stack import Backends, Log

FACTOR = 1.5
SETTLE_SECONDS = 60.0  # at most this long for a failed step's backlog to drain
OVERHEAD_SECONDS = 6.0  # a step's probe start, tokens and drain beyond its clicks


def find_max(stack: ExitStack, backends: Backends, args: Namespace, log: Log) -> list[Phase]:
    """Rising steps until one is not sustained, then bisection; every step measured."""
    began = time.monotonic()
    pipeline, meter = start_measured(stack, backends, args, log)
    deadline = began + args.find_budget
    step_cost = args.step_seconds + args.grace + OVERHEAD_SECONDS
    dsn = libpq(pipeline.database)
    steps: list[Phase] = []
    good, bad = 0.0, 0.0
    rate = args.find_from
    refine = args.find_refine
    while True:
        if not wait_for_backlog(dsn, SETTLE_SECONDS):
            log("the backlog of the last step did not drain; the search stops here")
            break
        if time.monotonic() + step_cost > deadline:
            log(f"the search reached its budget of {args.find_budget:g} s")
            break
        step = load_phase(pipeline, meter, "step", rate, args.step_seconds, args, log)
        steps.append(step)
        log(f"  {rate:g}/s: {'sustained' if step.capacity.sustained else 'NOT sustained'}")
        if step.capacity.sustained:
            good = rate
        else:
            bad = rate
        if not bad:
            rate = round(rate * FACTOR)
            continue
        if refine <= 0 or bad - good < max(2.0, 0.05 * bad):
            break
        refine -= 1
        rate = round((good + bad) / 2) if good else round(bad / FACTOR)
    return steps


def print_max_rate(steps: list[Phase], args: Namespace) -> None:
    print(
        f"\nA. highest sustained rate: steps of {args.step_seconds:g} s, fresh users each; "
        f"view = click -> view shows it ({probe_note(args)})"
    )
    print(
        f"{'offered':>8}{'sent/s':>7}{'answ/s':>7}{'failed':>7} | {'POST p50':>8}{'p99':>7} | "
        f"{'view p50':>8}{'p99':>7} | {'backlog peak':>12}{'drained':>8} | sustained  target"
    )
    for step in sorted(steps, key=lambda s: s.rate):
        c, v, k = step.clicks, step.view.latencies_ms, step.capacity
        drained = f"{k.drained_after:.1f} s" if k.drained_after is not None else "no"
        met = target_met(step)[0]
        print(
            f"{step.rate:>8g}{k.sent_rate:>7.0f}{k.achieved:>7.0f}{k.failed:>7} | "
            f"{ms(c.post_ms, 50):>8}{ms(c.post_ms, 99):>7} | {ms(v, 50):>8}{ms(v, 99):>7} | "
            f"{k.backlog_peak:>12,}{drained:>8} | {'yes' if k.sustained else 'NO':<9}  "
            f"{'met' if met and k.sustained else 'missed'}"
        )
    for step in sorted(steps, key=lambda s: s.rate):
        print(f"  {step.rate:g}/s CPU (% of one core): {format_usage(step.cpu)}")
    print(summary(steps))


def summary(steps: list[Phase]) -> str:
    """The highest sustained rate, the highest that also met the target, the first failure."""
    held = [s for s in steps if s.capacity.sustained]
    within = [s for s in held if target_met(s)[0]]
    failed = sorted((s for s in steps if not s.capacity.sustained), key=lambda s: s.rate)
    lines = []
    if held:
        best = max(held, key=lambda s: s.rate)
        lines.append(f"  highest sustained rate on this machine: {best.rate:g} clicks/s")
    else:
        lines.append("  no step was sustained: lower --find-from")
    target = f"click-to-view p99 < {TARGET_P99_MS:g} ms"
    if within:
        best = max(within, key=lambda s: s.rate)
        lines.append(f"  highest sustained with {target}: {best.rate:g} clicks/s")
    elif held:
        lines.append(f"  no sustained step had {target}")
    if not failed and steps:
        lines.append("  every step was sustained: the search ran out of --find-budget first")
    if failed:
        first = failed[0]
        lines.append(
            f"  lowest rate not sustained: {first.rate:g}/s ({'; '.join(first.capacity.reasons)})"
        )
    return "\n".join(lines)
