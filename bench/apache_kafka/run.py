"""Benchmarks on a local three-node Apache Kafka cluster (KRaft, RF 3, min.insync.replicas 2).

    python -m bench.apache_kafka [--events 20000] [--repeat 3] [--kills 3]

A: relay throughput (outbox -> acks=all -> delete) against a raw kafka-python producer sending
   the same records with the same settings; target ratio >= 0.7.
B: the projector on Apache Kafka against a raw KafkaConsumer on the same backlog (the parts
   of bench.end_to_end's part B); target ratio >= 0.5.
C: time from one broker's SIGKILL to the relay publishing again (p50 and max over --kills).
Each ratio is measured in the same run, medians of --repeat runs. Needs scripts/install.sh.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from uuid import uuid4

from bench.apache_kafka.broker_loss import measure_loss
from bench.apache_kafka.relay_rate import fill_outbox, outbox_rows, raw_rate, relay_rate
from bench.common.services import fresh_database, libpq, server_url
from bench.end_to_end.stack import Backends
from bench.end_to_end.throughput import prepare, project, raw_consume
from coordinator.dev.apache_kafka import KAFKA_VERSION, KafkaCluster, start_cluster


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def verdict(value: float, target: float) -> str:
    return "met" if value >= target else "MISS"


def part_a(stack: ExitStack, server: str, bootstrap: str, events: int, repeat: int) -> None:
    rows = outbox_rows(events, max(1, events // 10))
    ratios, relays, raws = [], [], []
    for run in range(1, repeat + 1):
        url = fresh_database(stack, server, "bench_relay")
        fill_outbox(libpq(url), rows)
        raw = raw_rate(bootstrap, f"raw-{uuid4().hex[:8]}", rows)
        relayed = relay_rate(url, libpq(url), bootstrap, f"relay-{uuid4().hex[:8]}", len(rows))
        log(f"A {run}/{repeat}: relay {relayed:,.0f}/s, raw producer {raw:,.0f}/s")
        ratios.append(relayed / raw)
        relays.append(relayed)
        raws.append(raw)
    ratio = statistics.median(ratios)
    print(
        f"A relay {statistics.median(relays):,.0f} events/s, raw producer "
        f"{statistics.median(raws):,.0f}/s, ratio {ratio:.2f} (target >= 0.7: "
        f"{verdict(ratio, 0.7)}); ratios {', '.join(f'{r:.2f}' for r in ratios)}"
    )


def part_b(stack: ExitStack, backends: Backends, events: int, repeat: int) -> None:
    backlog = prepare(stack, backends, events, max(1, events // 10), log)
    ratios, projected, raws = [], [], []
    for run in range(1, repeat + 1):
        raw = raw_consume(backends, backlog)
        drained = project(backends, backlog, run, False)
        log(f"B {run}/{repeat}: projector {drained.rate:,.0f}/s, raw {raw.rate:,.0f}/s")
        ratios.append(drained.rate / raw.rate)
        projected.append(drained.rate)
        raws.append(raw.rate)
    ratio = statistics.median(ratios)
    print(
        f"B projector {statistics.median(projected):,.0f} events/s, raw KafkaConsumer "
        f"{statistics.median(raws):,.0f}/s, ratio {ratio:.2f} (target >= 0.5: "
        f"{verdict(ratio, 0.5)}); ratios {', '.join(f'{r:.2f}' for r in ratios)}"
    )


def part_c(stack: ExitStack, server: str, cluster_: KafkaCluster, kills: int) -> None:
    resumed, longest = [], []
    for kill in range(kills):
        node = cluster_.nodes[kill % len(cluster_.nodes)].node_id
        url = fresh_database(stack, server, "bench_loss")
        loss = measure_loss(url, libpq(url), cluster_, f"loss-{uuid4().hex[:8]}", node, 100)
        log(
            f"C {kill + 1}/{kills}: node {node} killed; publishing again after "
            f"{loss.resumed_after:.2f} s (longest publish call {loss.longest_call:.2f} s)"
        )
        resumed.append(loss.resumed_after)
        longest.append(loss.longest_call)
    print(
        f"C SIGKILL of one broker -> relay publishing again: p50 "
        f"{statistics.median(resumed):.2f} s, max {max(resumed):.2f} s over {kills} kills "
        f"(longest publish call {max(longest):.2f} s); broker.session.timeout.ms 9000 "
        f"(default), producer request timeout 5 s, delivery timeout 30 s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.apache_kafka", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--parts", default="ABC")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-kafka-")))
        server = server_url(stack, tmp, log)
        log(f"starting Apache Kafka {KAFKA_VERSION}: 3 KRaft nodes ...")
        cluster = start_cluster(tmp / "kafka", 3)
        stack.callback(cluster.stop)
        first = cluster.nodes[0].process
        assert first is not None
        backends = Backends(server, cluster.bootstrap, tmp, first.pid, tmp / "pgdata", 300_000)
        print(f"Apache Kafka {KAFKA_VERSION}, 3 nodes; {args.events:,} events; machine shared")
        if "A" in args.parts:
            part_a(stack, server, cluster.bootstrap, args.events, args.repeat)
        if "B" in args.parts:
            part_b(stack, backends, args.events, args.repeat)
        if "C" in args.parts:
            part_c(stack, server, cluster, args.kills)
    return 0
