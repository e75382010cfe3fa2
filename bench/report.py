"""The README's performance rows, read from bench/results/*.json (the last step of `make bench`).

Each row gives the target, Lanyard's figure, the peer's (node-oidc-provider 9, where one runs)
and the ratio from the same run, and says whether the target is met or by how much it is
missed. A result file whose run had errors yields no figure ("failed run"), never a number; a
missing file yields "not run".

Run:  uv run python -m bench.report   (prints the Markdown table)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from bench.common import RESULTS

Row = tuple[str, str, str, str, str, str, str]


def load(name: str) -> dict[str, Any] | None:
    """A result file, or None when it is missing or its run had errors."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    return None if result.get("errors") else result


def verdict(value: float | None, target: float, higher_is_better: bool = True) -> str:
    """'met' or 'missed: N× short' (how far from the target, as a factor)."""
    if value is None:
        return "no figure"
    if (value >= target) if higher_is_better else (value <= target):
        return "met"
    factor = target / value if higher_is_better else value / target
    return f"missed by {factor:.1f}×"


def reproduce(r: dict[str, Any] | None, default: str) -> str:
    """The command behind a row, with the load average its run ended at (the machine is shared)."""
    if r is None:
        return f"`{default}`"
    load = (r.get("machine") or {}).get("loadavg_1_5_15")
    return f"`{r['how_to_run']}`" + (f" (load {load[0]})" if load else "")


def token_rows(r: dict[str, Any] | None) -> Iterator[Row]:
    """One row per endpoint and peer store for the IdP as deployed by default, then the same for
    each same-run variant that is a product setting (`LANYARD_…` environment only; a variant that
    points at another checkout is an A/B for docs/performance.md, not a configuration)."""
    how = reproduce(r, "uv run python -m bench.token_endpoints")
    for endpoint, label, target in (("refresh", "refresh grants/s", 1.2), ("introspection", "introspections/s", 1.5)):
        if r is None:
            yield (label, f"≥ {target}× peer", "not run / failed run", "", "", "", how)
            continue
        for name, setting in configurations(r):
            ours, env = r[name][endpoint], r[name].get("environment") or {}
            variant = ",".join(f"{key}={value}" for key, value in env.items())
            run_with = f"{how} with `--variant {name.removeprefix('lanyard_idp_')}:{variant}`" if env else how
            for store in ("memory", "redis"):
                peer = r[f"node_oidc_provider_9_{store}"][endpoint]
                throughput = round(ours["requests_per_second"] / peer["requests_per_second"], 2)
                cpu = round(ours["server_cpu_ms_per_request"] / peer["server_cpu_ms_per_request"], 2)
                yield (
                    f"{label}{setting} (peer store: {store})",
                    f"≥ {target}× peer, CPU/request ≤ peer",
                    f"{ours['requests_per_second']}/s, {ours['server_cpu_ms_per_request']} ms CPU",
                    f"{peer['requests_per_second']}/s, {peer['server_cpu_ms_per_request']} ms CPU",
                    f"{throughput}× (CPU {cpu}×)",
                    f"throughput {verdict(throughput, target)}; CPU {verdict(cpu, 1.0, higher_is_better=False)}",
                    run_with,
                )


def configurations(r: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """("lanyard_idp", "") and, for each product-setting variant, its key and a label suffix."""
    yield "lanyard_idp", ""
    for name, run in r.items():
        env = run.get("environment") if isinstance(run, dict) and name.startswith("lanyard_idp_") else None
        if env and all(key.startswith("LANYARD_") for key in env):
            yield name, ", " + ", ".join(f"`{key}={value}`" for key, value in env.items())


def revocation_row(label: str, rev: dict[str, Any], how: str) -> Row:
    if "all" not in rev:  # a result from before the target's definition (answered → introspection only)
        old = f"old definition only: p50 {rev.get('p50')} ms, p99 {rev.get('p99')} ms"
        return (label, "p50 ≤ 8 ms, p99 ≤ 25 ms", old, "", "", "not re-measured", how)
    p50, p99 = rev["all"]["p50"], rev["all"]["p99"]
    return (
        label,
        "p50 ≤ 8 ms, p99 ≤ 25 ms",
        f"p50 {p50} ms, p99 {p99} ms (n={rev['all']['n']}; checkin answered p50 {rev['checkin_answered']['p50']} ms)",
        "",
        "",
        f"p50 {verdict(p50, 8, False)}, p99 {verdict(p99, 25, False)}",
        how,
    )


def sso_rows(r: dict[str, Any] | None) -> Iterator[Row]:
    how = reproduce(r, "uv run python -m bench.locker_sso")
    if r is None:
        yield ("device-session SSO flows/s", "≥ 300/s", "not run / failed run", "", "", "", how)
        return
    node = r.get("sso_throughput_light_client") or r["sso_throughput"]
    fps = node["flows_per_second"]
    cpu = node.get("cpu_ms_per_flow", {})
    yield (
        "device-session SSO flows/s (authorize + token, gateway, Node client)",
        "≥ 300/s; IdP CPU/flow ≤ 2.6 ms",
        f"{fps}/s; CPU ms/flow {', '.join(f'{k} {v}' for k, v in cpu.items() if v)}",
        "",
        "",
        f"flows {verdict(fps, 300)}; IdP CPU {verdict(cpu.get('idp'), 2.6, False)}",
        how,
    )
    yield revocation_row(
        f"revocation, {r['revocation_ms']['live_sessions']:,} live sessions, background SSO", r["revocation_ms"], how
    )
    grant = r["grant_ms"]
    yield ("grant: checkout answered → first SSO code", "p99 ≤ 100 ms", f"p99 {grant['p99']} ms", "", "",
           verdict(grant["p99"], 100, False), how)  # fmt: skip


def event_rows(r: dict[str, Any] | None, label: str, default_how: str) -> Iterator[Row]:
    how = reproduce(r, default_how)
    if r is None:
        yield (f"checkouts/s through session → policy → IdP, {label}", "≥ 2,000/s", "not run / failed run", "", "",
               "", how)  # fmt: skip
        return
    for level, v in r["levels"].items():
        rate = v["checkouts_per_second_through_policy_and_idp"]
        cpu = v.get("cpu_ms_per_checkout") or {}
        spent = ", ".join(f"{k} {ms}" for k, ms in cpu.items() if ms)
        yield (
            f"checkouts/s through policy → IdP, {label}, seeding to {int(level):,}",
            "≥ 2,000/s",
            f"{rate}/s ({v['records_per_second']} records/s)" + (f"; CPU ms/checkout: {spent}" if spent else ""),
            "",
            "",
            verdict(rate, 2000),
            how,
        )
        yield revocation_row(
            f"revocation, {v['live_sessions']:,} live sessions ({label}), background SSO", v["revocation_ms"], how
        )


def memory_row(results: list[dict[str, Any] | None]) -> Row:
    peaks: dict[str, float] = {}
    for r in results:
        for service, mb in ((r or {}).get("peak_rss_mb_throughout") or {}).items():
            peaks[service] = max(peaks.get(service, 0.0), mb)
    worst = max(peaks.values(), default=None)
    shown = ", ".join(f"{k} {v}" for k, v in sorted(peaks.items())) or "not run"
    return ("memory per service process, sampled every 0.5 s", "≤ 200 MB RSS", f"peak MB: {shown}", "", "",
            verdict(worst, 200, False), "the SSO and event runs above")  # fmt: skip


def rows() -> list[Row]:
    """Every README row, in order."""
    sso = load("locker_sso")
    events = load("event_throughput")
    several = next((load(p.stem) for p in sorted(RESULTS.glob("event_throughput_*_enterprises.json"))), None)
    return [
        *token_rows(load("token_endpoints")),
        *sso_rows(sso),
        *event_rows(events, "one enterprise", "uv run python -m bench.event_throughput --levels 10000 100000"),
        *event_rows(
            several,
            f"{several['parameters']['enterprises']} enterprises" if several else "several enterprises",
            "uv run python -m bench.event_throughput --levels 10000 --enterprises 4",
        ),
        memory_row([sso, events, several]),
    ]


def main() -> None:
    """Print the rows as a Markdown table."""
    print("| what | target | Lanyard | node-oidc-provider 9 | ratio (same run) | verdict | how to reproduce |")
    print("|---|---|---|---|---|---|---|")
    for row in rows():
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
