"""Scraping a server's /metrics in tests: HTTP from a chosen client address, parsed samples."""

import http.client
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.support import HOST, HTTP_TIMEOUT, ServerProcess


@dataclass(frozen=True)
class Scrape:
    """One answer of GET /metrics."""

    status: int
    text: str
    headers: Mapping[str, str]  # names in lower case

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        """Every sample: its name (with `_total`, `_count`... suffixes), labels and value."""
        return [
            (sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(self.text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0 when none)."""
        return sum(
            value
            for sample_name, sample_labels, value in self.samples()
            if sample_name == name and labels.items() <= sample_labels.items()
        )

    def label_values(self) -> set[str]:
        """Every label value of every sample."""
        return {value for _, labels, _ in self.samples() for value in labels.values()}


def scrape(
    server: ServerProcess, *, source: str = HOST, headers: Mapping[str, str] | None = None
) -> Scrape:
    """GET /metrics of `server` from client address `source` (any 127.x.y.z on loopback)."""
    connection = http.client.HTTPConnection(
        HOST, server.port, timeout=HTTP_TIMEOUT, source_address=(source, 0)
    )
    try:
        connection.request("GET", "/metrics", headers=dict(headers or {}))
        response = connection.getresponse()
        body = response.read().decode()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Scrape(status=response.status, text=body, headers=headers)
    finally:
        connection.close()


def scraped(server: ServerProcess) -> Scrape:
    """A successful scrape of `server` from this host, in the Prometheus text format."""
    answer = scrape(server)
    assert answer.status == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return answer


def read_files(directory: Path) -> Scrape:
    """What the multiprocess files in `directory` add up to, as a /metrics over them would
    serve it (read here: the processes that wrote them may have ended)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    return Scrape(status=200, text=generate_latest(registry).decode(), headers={})
