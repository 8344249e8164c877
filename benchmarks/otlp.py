"""OTLP ingest speed in spans/s: protobuf POSTs to a real ``evalkit serve``, and Collector files.

Builds synthetic retrieval spans (GenAI conventions: query text, five scored documents,
two tenants, one generation span per ten traces), encodes them as OTLP requests of
``--batch`` spans each (512: the SDK's BatchSpanProcessor default), then:

- **receiver**: starts ``evalkit serve --otlp-port`` in a child process on a new store and
  POSTs every request (protobuf, as the SDK exporter sends it) from ``--senders`` threads,
  each waiting for its 200 (the batch is spooled) before sending the next, until the spool
  is committed to the store;
- **file**: writes the same requests as OTLP/JSON lines (the Collector file exporter's
  format) and runs ``ingest_paths(..., file_format="otlp-json")`` into a new store.

It prints spans/s for both, beside the machine's load. ``benchmarks/traffic.py`` measures
the JSON Lines ingest; ``measure_otlp`` returns these figures for reporting beside it.

    .venv/bin/python benchmarks/otlp.py [--spans 100000] [--batch 512] [--senders 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from evalkit.store import Store
from evalkit.traffic import ingest_paths
from evalkit.traffic.spool import SPOOL_SUFFIX

WORDS = ["reset", "password", "invoice", "refund", "shipping", "parcel", "token", "quota"]
START_NS = 1_795_000_000_000_000_000


def _attribute(key: str, value: object) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def requests(spans: int, batch: int, seed: int = 0) -> Iterator[ExportTraceServiceRequest]:
    """Synthetic ExportTraceServiceRequests of ``batch`` spans each, ``spans`` in all."""
    rng = random.Random(seed)
    made = 0
    while made < spans:
        tenant = f"tenant-{made // batch % 2}"
        scope = ScopeSpans()
        for _ in range(min(batch, spans - made)):
            trace = rng.getrandbits(128).to_bytes(16, "big")
            start = START_NS + made * 1_000_000
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 9)))
            docs = [
                {"id": f"d{rng.randrange(100_000)}", "score": round(rng.random(), 4)}
                for _ in range(5)
            ]
            span = Span(
                trace_id=trace,
                span_id=rng.getrandbits(64).to_bytes(8, "big"),
                name="retrieval kb",
                start_time_unix_nano=start,
                end_time_unix_nano=start + rng.randrange(2, 80) * 1_000_000,
            )
            span.attributes.extend(
                [
                    _attribute("gen_ai.operation.name", "retrieval"),
                    _attribute("gen_ai.data_source.id", "kb"),
                    _attribute("gen_ai.retrieval.top_k", 5),
                    _attribute("gen_ai.retrieval.query.text", words),
                    _attribute("gen_ai.retrieval.documents", json.dumps(docs)),
                ]
            )
            scope.spans.append(span)
            made += 1
        resource = ResourceSpans(scope_spans=[scope])
        resource.resource.attributes.extend(
            [_attribute("service.name", "bench"), _attribute("tenant.id", tenant)]
        )
        yield ExportTraceServiceRequest(resource_spans=[resource])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def measure_receiver(bodies: list[bytes], spans: int, senders: int, work: Path) -> float:
    """Spans/s of POSTing ``bodies`` (protobuf) to a real ``evalkit serve`` until they are
    all in the store; each POST waits for its 200 (the batch is spooled) before the sender's
    next, and the clock stops once the spool is empty."""
    port = _free_port()
    home = work / "serve-home"
    config = work / "evalkit.toml"
    config.write_text("[scheduler]\nhealth_port = 0\n")
    env = {**os.environ, "EVALKIT_HOME": str(home), "EVALKIT_CONFIG": str(config)}
    env.pop("EVALKIT_STORE_PATH", None)
    log = (work / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "evalkit", "serve", "--otlp-port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1/traces"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.post(url, content=b"", headers={"Content-Type": "application/json"})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    message = f"evalkit serve did not start: see {work / 'serve.log'}"
                    raise SystemExit(message) from None
                time.sleep(0.2)
        queue = list(bodies)
        lock = threading.Lock()
        failures: list[str] = []

        def send() -> None:
            with httpx.Client(timeout=120) as client:
                while True:
                    with lock:
                        if not queue:
                            return
                        body = queue.pop()
                    answer = client.post(
                        url, content=body, headers={"Content-Type": "application/x-protobuf"}
                    )
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code}: {answer.text[:200]}")

        threads = [threading.Thread(target=send) for _ in range(senders)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        spool = home / f"evalkit.duckdb{SPOOL_SUFFIX}"
        while any(name.endswith(".batch") for name in os.listdir(spool)):
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        if failures:
            raise SystemExit(f"{len(failures)} requests failed, first: {failures[0]}")
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()
    with Store.open(home / "evalkit.duckdb", read_only=True) as store:
        stored = store.fetch("SELECT count(*) FROM traffic_records")[0][0]
    if stored != spans:
        raise SystemExit(f"stored {stored} of {spans} spans")
    return spans / elapsed


def measure_file(lines: list[str], spans: int, work: Path) -> float:
    """Spans/s of ingesting the requests as an OTLP/JSON file (Collector file exporter)."""
    path = work / "traces.json"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    with Store.open(work / "file.duckdb") as store:
        started = time.perf_counter()
        report = ingest_paths(store, [path], file_format="otlp-json")
        elapsed = time.perf_counter() - started
    if report.records_added != spans:
        raise SystemExit(f"ingested {report.records_added} of {spans} spans: {report.problems}")
    return spans / elapsed


def measure_otlp(*, spans: int, batch: int, senders: int) -> dict[str, float]:
    """``{"receiver": spans/s, "file": spans/s}`` for ``spans`` synthetic retrieval spans."""
    made = list(requests(spans, batch))
    bodies = [request.SerializeToString() for request in made]
    lines = [json.dumps(json.loads(MessageToJson(request, indent=None))) for request in made]
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        return {
            "receiver": measure_receiver(bodies, spans, senders, work),
            "file": measure_file(lines, spans, work),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--senders", type=int, default=2)
    options = parser.parse_args()
    figures = measure_otlp(spans=options.spans, batch=options.batch, senders=options.senders)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"OTLP receiver (protobuf POSTs of {options.batch}, {options.senders} senders): "
        f"{figures['receiver']:,.0f} spans/s"
    )
    print(f"OTLP/JSON file ingest (--format otlp-json): {figures['file']:,.0f} spans/s")


if __name__ == "__main__":
    main()
