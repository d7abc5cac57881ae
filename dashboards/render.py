"""Draws the panels of kube-iptables-tailer.json from real scrapes of the agent (test/dashboards/capture.ts):
a rendering of what each panel's query shows, computed here from the scraped samples, not Grafana itself.

    python dashboards/render.py scrapes.jsonl dashboards/kube-iptables-tailer.png

Needs matplotlib. A panel this script cannot draw is an error, so the picture keeps up with the dashboard.
"""

import json
import re
import sys
from collections import defaultdict
from io import BytesIO
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

K = "kube_iptables_tailer_"
RATE_WINDOW = 5  # scrapes (seconds) per rate, as Grafana's $__rate_interval would be for a 1 s scrape
SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def load(path):
    times, scrapes = [], []
    for line in Path(path).read_text().splitlines():
        record = json.loads(line)
        samples = {}
        for text in record["text"].splitlines():
            match = SAMPLE.match(text)
            if match:
                labels = tuple(sorted(LABEL.findall(match.group(2) or "")))
                samples[(match.group(1), labels)] = float(match.group(3))
        times.append(record["t"] / 1000)
        scrapes.append(samples)
    start = times[0]
    return [t - start for t in times], scrapes


TIMES, SCRAPES = load(sys.argv[1])


def grouped(name, by=(), where=lambda labels: True):
    """Per scrape, the samples of `name` summed by the labels `by` (a missing series counts 0)."""
    series = defaultdict(lambda: [0.0] * len(SCRAPES))
    for i, samples in enumerate(SCRAPES):
        for (metric, labels), value in samples.items():
            labels = dict(labels)
            if metric == name and where(labels):
                series[tuple(labels.get(label, "") for label in by)][i] += value
    return series


def rate(values):
    return [
        (values[i] - values[max(0, i - RATE_WINDOW)]) / max(1e-9, TIMES[i] - TIMES[max(0, i - RATE_WINDOW)])
        for i in range(len(values))
    ]


def rates(name, by=(), legend=None, where=lambda labels: True):
    return [(legend(key) if legend else name, rate(values)) for key, values in grouped(name, by, where).items()]


def gauges(name, legend):
    return [(legend, values) for values in grouped(name).values()]


def top(name, by, legend, n=10):
    """increase() over the whole capture, largest first."""
    totals = {legend(key): values[-1] - values[0] for key, values in grouped(name, by).items()}
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)[:n]


def namespace(peer):
    return peer.split("/")[0]


def namespace_pairs():
    pairs = defaultdict(lambda: [0.0] * len(SCRAPES))
    for (src, dst), values in grouped("packet_drops_count", ("src", "dst")).items():
        for i, value in enumerate(rate(values)):
            pairs[f"{namespace(src)} → {namespace(dst)}"][i] += value
    return list(pairs.items())


def top_rates(name, by, legend, n=10):
    series = rates(name, by, legend)
    return sorted(series, key=lambda item: max(item[1]), reverse=True)[:n]


PANELS = {
    "Drops by source → destination (top 10)": lambda: top_rates(
        "packet_drops_count", ("src", "dst"), lambda k: f"{k[0]} → {k[1]}"
    ),
    "Drops by namespace pair": namespace_pairs,
    "Top dropped destinations": lambda: top("packet_drops_count", ("dst",), lambda k: k[0]),
    "Top dropping policies": lambda: top(K + "policy_drops_total", ("kind", "namespace", "name"), " ".join),
    "What became of parsed drops": lambda: [
        (legend, rate(next(iter(grouped(K + name).values()), [0.0] * len(SCRAPES))))
        for name, legend in [
            ("drops_posted_total", "posted"),
            ("drops_suppressed_total", "suppressed (repeat)"),
            ("drops_unmatched_total", "unmatched"),
            ("drops_expired_total", "expired"),
        ]
    ],
    "Event writes": lambda: rates(K + "drop_sides_total", ("outcome",), lambda k: f"sides {k[0]}")
    + rates(K + "events_created_total", legend=lambda k: "Events created")
    + rates(K + "events_patched_total", legend=lambda k: "Events patched"),
    "Event writes failed and given up, by reason": lambda: rates(
        K + "events_failed_total", ("reason",), lambda k: f"failed {k[0]}"
    )
    + rates(K + "events_dropped_total", ("reason",), lambda k: f"given up {k[0]}"),
    "Queue depth": lambda: gauges(K + "queue_depth", "queue depth"),
    "Back-pressure: share of time reading waited": lambda: rates(
        K + "read_wait_seconds_total", legend=lambda k: "waited"
    ),
    "Source lag and stall": lambda: gauges(K + "source_lag_seconds", "lag")
    + gauges(K + "source_stalled_seconds", "stalled"),
    "Lines": lambda: rates(K + "lines_read_total", legend=lambda k: "read")
    + rates(K + "lines_parsed_total", legend=lambda k: "parsed")
    + rates(K + "lines_invalid_total", ("reason",), lambda k: f"invalid {k[0]}"),
    "Source errors by reason": lambda: rates(K + "source_errors_total", ("reason",), lambda k: k[0]),
    "Pod and node watch": lambda: rates(
        K + "api_watch_total", ("resource", "counter"), lambda k: f"{k[0]} {k[1]}"
    ),
    "Watch reconnects and relists": lambda: [
        (f"{k[0]} {k[1]}", v[-1] - v[0])
        for k, v in grouped(
            K + "api_watch_total", ("resource", "counter"), lambda l: l["counter"] in ("reconnects", "relists")
        ).items()
    ],
    "Pods indexed and lookups": lambda: gauges(K + "pods_indexed", "pods indexed")
    + gauges(K + "pod_lookup_cache_entries", "lookup cache entries"),
    "Memory": lambda: [
        (legend, [v / 2**20 for v in values])
        for legend, values in gauges("process_resident_memory_bytes", "resident MiB")
        + gauges("nodejs_heap_size_used_bytes", "heap used MiB")
        + gauges("nodejs_external_memory_bytes", "external MiB")
    ],
    "CPU": lambda: rates("process_cpu_seconds_total", legend=lambda k: "cores"),
    "Event loop lag p99 and series evicted": lambda: [
        (legend, [v * 1000 for v in values])
        for legend, values in gauges("nodejs_eventloop_lag_p99_seconds", "loop lag p99 ms")
    ],
}


def draw(dashboard, out):
    panels = dashboard["panels"]
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    # Row headers get more height than a grid unit so the titles of the panels under them stay clear.
    rows = {p["gridPos"]["y"] for p in panels if p["type"] == "row"}
    ratios = [2.5 if y in rows else 1 for y in range(height)]
    figure = plt.figure(figsize=(16, sum(ratios) * 0.3), dpi=72)
    grid = figure.add_gridspec(
        height, 24, height_ratios=ratios, hspace=1.2, wspace=2.5, left=0.03, right=0.99, top=0.99, bottom=0.02
    )
    for panel in panels:
        g = panel["gridPos"]
        axes = figure.add_subplot(grid[g["y"] : g["y"] + g["h"], g["x"] : g["x"] + g["w"]])
        if panel["type"] == "row":
            axes.axis("off")
            axes.text(0, 1, panel["title"], fontsize=12, fontweight="bold", va="top", transform=axes.transAxes)
            continue
        if panel["title"] not in PANELS:
            sys.exit(f"render.py draws no panel titled {panel['title']!r}: add it to PANELS")
        series = PANELS[panel["title"]]()
        axes.set_title(panel["title"], fontsize=9, loc="left")
        axes.tick_params(labelsize=7)
        if panel["type"] == "bargauge":
            # Names inside the bars, as Grafana's bar gauge shows them, since peer names are long.
            for i, (label, value) in enumerate(reversed(series)):
                axes.barh(i, value, color="#5794f2")
                axes.text(0, i, f" {label}  {value:.0f}", va="center", fontsize=6)
            axes.set_yticks([])
            if not series:
                axes.text(0.5, 0.5, "no data", ha="center", transform=axes.transAxes, color="grey")
            continue
        for legend, values in series:
            axes.plot(TIMES, values, linewidth=1, label=legend)
        if series:
            axes.legend(fontsize=6, loc="upper right", frameon=False, ncol=1 + len(series) // 6)
        else:
            axes.text(0.5, 0.5, "no data", ha="center", transform=axes.transAxes, color="grey")
    buffer = BytesIO()
    figure.savefig(buffer, format="png")
    # A palette of 64 colours keeps the picture small enough for the repository.
    Image.open(buffer).convert("RGB").quantize(colors=64).save(out, optimize=True)


draw(json.loads((Path(__file__).parent / "kube-iptables-tailer.json").read_text()), sys.argv[2])
