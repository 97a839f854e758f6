"""What the benchmarks share: the facts of the machine they ran on, and how figures are printed."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pandas as pd
from psycopg.conninfo import conninfo_to_dict

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"  # beside the checkout


def read_source(source) -> pd.DataFrame:
    """All chunks of an importer's Source, without the rows it found bad or left out (as services.imports does)."""
    frames = []
    for chunk in source.chunks:
        left_out = {p.row for p in chunk.problems} | {row for rows in chunk.skipped.values() for row in rows}
        frames.append(chunk.events.drop(index=chunk.events.index.intersection(list(left_out))))
    events = pd.concat(frames)
    return events[events["customer"].notna() & events["occurred_at"].notna()]


def machine_facts(server: dict) -> dict:
    """Cores, CPU, memory, load and versions, so a figure can be read against the machine that made it."""
    import django
    import xgboost

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next((int(line.split()[1]) // 1024**2 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return {"cores": os.cpu_count(), "cpu": cpu, "load": load, "memory_gib": memory,
            "python": platform.python_version(), "django": django.get_version(), "xgboost": xgboost.__version__,
            "postgresql": server["server_version"], "postgresql_settings": server}


def number(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}"


def redacted(url: str) -> str:
    """A database URL without its credentials."""
    info = conninfo_to_dict(url)
    return f"{info.get('host', 'local socket')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
