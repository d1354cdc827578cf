"""scripts/lib/tls_report.py RAW OUT — the report of scripts/compare-tls.sh.

RAW is a run directory: meta.json (the command, machine, load and sizes,
written by compare-tls.sh), manifest.tsv (one line per shardbench run) and
the runs' JSON reports. OUT.md and OUT.json are written from them, so a kept
run directory can be reported again (scripts/compare-tls.sh --report RAW).
"""
import json
import os
import statistics
import sys

raw, out = sys.argv[1], sys.argv[2]
with open(os.path.join(raw, "meta.json")) as f:
    meta = json.load(f)

runs = []
with open(os.path.join(raw, "manifest.tsv")) as f:
    next(f)
    for line in f:
        system, scenario, rnd, status, report, server, bench = line.rstrip("\n").split("\t")
        rep = None
        if status == "ok":
            try:
                with open(os.path.join(raw, os.path.basename(report))) as r:
                    rep = json.load(r)
            except (OSError, ValueError) as e:
                status = f"failed: no report ({e})"
        runs.append({"system": system, "scenario": scenario, "round": int(rnd), "status": status,
                     "server_command": server, "bench_command": bench, "report": rep})


def get(rep, *path):
    for p in path:
        if not isinstance(rep, dict) or rep.get(p) is None:
            return None
        rep = rep[p]
    return rep


# name: (scenario, path in the report, whether a ratio means anything)
metrics = {
    "rss_per_idle_tls_conn_bytes": ("connect", ("server", "rss_per_conn_bytes"), True),
    "tls_upgrades_per_second": ("connect", ("connect", "per_second"), True),
    "server_cpu_per_tls_upgrade_us": ("connect", ("connect", "server_cpu_per_conn_us"), True),
    "server_cpu_per_tls_delivery_us": ("fanout", ("fanout", "server_cpu_per_delivery_us"), True),
    "fanout_delivered_pct": ("fanout", ("fanout", "delivered_pct"), False),
    "fanout_deliveries_per_second": ("fanout", ("fanout", "deliveries_per_second"), True),
    "fanout_published": ("fanout", ("fanout", "published"), False),
    "fanout_publishes_late": ("fanout", ("fanout", "publish_late"), False),
    "fanout_latency_p99_ms": ("fanout", ("fanout", "latency", "p99_ms"), True),
    "generator_max_rss_bytes_connect": ("connect", ("generator", "max_rss_bytes"), True),
}
systems = []
for r in runs:
    if r["system"] not in systems:
        systems.append(r["system"])
summary = {}
for s in systems:
    summary[s] = {}
    for m, (scen, path, _) in metrics.items():
        vals = [get(r["report"], *path) for r in runs if r["system"] == s and r["scenario"] == scen]
        vals = [v for v in vals if v is not None]
        summary[s][m] = statistics.median(vals) if vals else None
    tls = next((get(r["report"], "tls") for r in runs if r["system"] == s and get(r["report"], "tls")), None)
    if tls:
        tls = dict(tls, verify=tls.get("verify", "").replace(raw.rstrip("/"), "$RAW"))
    summary[s]["tls"] = tls
ratios = {}
if "shardgate" in summary and "centrifugo" in summary:
    for m, (_, _, meaningful) in metrics.items():
        a, b = summary["shardgate"][m], summary["centrifugo"][m]
        if meaningful:
            ratios[m] = round(a / b, 3) if a is not None and b else None
target = None
rss = summary.get("shardgate", {}).get("rss_per_idle_tls_conn_bytes")
if rss is not None:
    target = {"rss_per_idle_tls_conn_max_bytes": 6144, "shardgate_bytes": rss, "met": rss <= 6144}
for r in runs:  # keep the report portable: no temporary paths
    r["server_command"] = r["server_command"].replace(raw.rstrip("/"), "$RAW")
    r["bench_command"] = r["bench_command"].replace(raw.rstrip("/"), "$RAW")
    if r["report"]:
        r["report"] = json.loads(json.dumps(r["report"]).replace(raw.rstrip("/"), "$RAW"))
doc = {"meta": meta, "summary": summary, "ratios_shardgate_over_centrifugo": ratios, "target": target, "runs": runs}
with open(out + ".json", "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")


def fmt(v, unit):
    if v is None:
        return "failed"
    if unit == "KiB":
        return f"{v / 1024:,.2f} KiB"
    if unit == "MiB":
        return f"{v / 1048576:,.0f} MiB"
    if unit == "%":
        return f"{v:,.2f} %"
    if unit == "":
        return f"{v:,.0f}"
    return f"{v:,.1f} {unit}"


conns, subs = meta["connect_conns"], meta["fanout_conns"]
rows = [
    (f"RSS per idle TLS connection ({conns:,})", "rss_per_idle_tls_conn_bytes", "KiB"),
    ("TLS upgrades per second (connect)", "tls_upgrades_per_second", "/s"),
    ("server CPU per TLS upgrade", "server_cpu_per_tls_upgrade_us", "µs"),
    (f"server CPU per TLS delivery ({subs:,} subscribers)", "server_cpu_per_tls_delivery_us", "µs"),
    ("fan-out delivered", "fanout_delivered_pct", "%"),
    (f"fan-out deliveries per second (asked: {subs * 10:,})", "fanout_deliveries_per_second", "/s"),
    ("fan-out publishes", "fanout_published", ""),
    ("fan-out publishes late (over one interval behind schedule)", "fanout_publishes_late", ""),
    ("fan-out latency p99", "fanout_latency_p99_ms", "ms"),
    ("load generator max RSS (connect, all workers)", "generator_max_rss_bytes_connect", "MiB"),
]
L = ["# TLS comparison: shardgate and Centrifugo, both serving wss://", ""]
L.append(f"Command: `{meta['command']}` ({meta['started']}); shardgate at {meta['shardgate_commit']}; "
         f"Centrifugo {meta['centrifugo'] or '(not run)'} (in-memory engine, bench/peers/centrifugo/config.json, "
         "TLS through `scripts/bench-centrifugo.sh` TLS_CERT/TLS_KEY).")
L.append("")
L.append(f"Machine: {meta['machine']}; load generator on the same cores.")
L.append(f"Load before the run: `{meta['load_before']}`; after: `{meta['load_after']}`.")
for note in meta.get("notes", []):
    L.append("")
    L.append(note)
L.append("")
L.append("Each run: a fresh server with the same throwaway CA-signed ECDSA P-256 certificate, then")
L.append(f"`{meta['connect']} -ca ca.pem -procs {meta['procs']} -inflight {meta['inflight']}` or")
L.append(f"`{meta['fanout']} -ca ca.pem -procs {meta['procs']} -inflight {meta['inflight']}`;")
L.append(f"{meta['rounds']} round(s), systems alternating; medians of the rounds compared.")
L.append("")
for s in systems:
    t = summary[s]["tls"]
    if t:
        L.append(f"- {s}: {t.get('version')}, {t.get('cipher_suite')}, key exchange {t.get('group')}, "
                 f"ALPN {t.get('alpn')}; certificate {t.get('verify')}; a full handshake per connection.")
L.append("")
L.append("| | " + " | ".join(systems) + (" | shardgate ÷ centrifugo |" if ratios else " |"))
L.append("|---|" + "---:|" * (len(systems) + (1 if ratios else 0)))
for label, m, unit in rows:
    line = f"| {label} | " + " | ".join(fmt(summary[s][m], unit) for s in systems) + " |"
    if ratios:
        v = ratios.get(m)
        line += f" {v if v is not None else '-'} |"
    L.append(line)
L.append("")
if target:
    L.append(f"- shardgate RSS per idle TLS connection at {conns:,}: {rss / 1024:.2f} KiB "
             f"(target: at most 6 KiB): {'met' if target['met'] else 'MISSED'}")
for s in systems:
    late = summary[s]["fanout_publishes_late"]
    if late:
        L.append(f"- {s} fell behind the publish schedule ({late:,.0f} of {summary[s]['fanout_published'] or 0:,.0f} "
                 "publishes late; the peers answer a "
                 "publish once it is fanned out, which slows the publisher): its fan-out latency is that of a "
                 "lower delivery rate and does not compare with a system that kept up.")
for r in runs:
    if r["status"] != "ok":
        L.append(f"- {r['system']} {r['scenario']} round {r['round']}: {r['status']}")
for r in runs:
    for w in get(r["report"], "warnings") or []:
        L.append(f"- warning, {r['system']} {r['scenario']} round {r['round']}: {w}")
L.append("")
L.append("| run | status | server command | shardbench command |")
L.append("|---|---|---|---|")
for r in runs:
    L.append(f"| {r['system']} {r['scenario']} {r['round']} | {r['status']} | `{r['server_command']}` | `{r['bench_command']}` |")
L.append("")
L.append(f"Every figure and each shardbench report in full: [{os.path.basename(out)}.json]({os.path.basename(out)}.json).")
with open(out + ".md", "w") as f:
    f.write("\n".join(L) + "\n")
