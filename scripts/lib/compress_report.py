"""scripts/lib/compress_report.py RAW OUT — the report of scripts/compare-compress.sh.

RAW is a run directory: meta.json (the command, machine, load and sizes,
written by compare-compress.sh), manifest.tsv (one line per shardbench run)
and the runs' JSON reports. OUT.md and OUT.json are written from them, so a
kept run directory can be reported again (compare-compress.sh --report RAW).

Every ratio is taken between runs of the same round (minutes apart on the
same machine); the summary gives the median of the rounds' ratios next to
the medians of the figures.
"""
import json
import os
import statistics
import sys

raw, out = sys.argv[1], sys.argv[2]
with open(os.path.join(raw, "meta.json")) as f:
    # Keep the report portable: the raw directory is $RAW in it.
    meta = json.loads(f.read().replace(raw.rstrip("/"), "$RAW"))

runs = []
with open(os.path.join(raw, "manifest.tsv")) as f:
    next(f)
    for line in f:
        fields = line.rstrip("\n").split("\t")
        system, scenario, rnd, status, report, server, bench = fields[:7]
        busy = float(fields[7]) if len(fields) > 7 and fields[7] else None
        rep = None
        if status == "ok":
            try:
                with open(os.path.join(raw, os.path.basename(report))) as r:
                    rep = json.load(r)
            except (OSError, ValueError) as e:
                status = f"failed: no report ({e})"
        runs.append({"system": system, "scenario": scenario, "round": int(rnd), "status": status,
                     "server_command": server, "bench_command": bench, "busy_before_pct": busy, "report": rep})


def get(rep, *path):
    for p in path:
        if not isinstance(rep, dict) or rep.get(p) is None:
            return None
        rep = rep[p]
    return rep


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def run_of(system, scenario, rnd):
    for r in runs:
        if r["system"] == system and r["scenario"] == scenario and r["round"] == rnd and r["report"]:
            return r["report"]
    return None


# Fan-out figures: name → path in a fanout report.
fanout_metrics = {
    "server_cpu_per_delivery_us": ("fanout", "server_cpu_per_delivery_us"),
    "wire_bytes_per_delivery": ("fanout", "wire", "bytes_per_delivery"),
    "message_bytes_per_delivery": ("fanout", "wire", "message_bytes_per_delivery"),
    "delivered_pct": ("fanout", "delivered_pct"),
    "delivered": ("fanout", "delivered"),
    "expected": ("fanout", "expected"),
    "published": ("fanout", "published"),
    "publishes_late": ("fanout", "publish_late"),
    "deliveries_per_second": ("fanout", "deliveries_per_second"),
    "latency_p50_ms": ("fanout", "latency", "p50_ms"),
    "latency_p90_ms": ("fanout", "latency", "p90_ms"),
    "latency_p99_ms": ("fanout", "latency", "p99_ms"),
    "latency_p99_9_ms": ("fanout", "latency", "p99_9_ms"),
    "latency_max_ms": ("fanout", "latency", "max_ms"),
    "negotiated": ("compression", "negotiated"),
    "declined": ("compression", "declined"),
    "compressed_messages": ("compression", "compressed_messages"),
    "plain_messages": ("compression", "plain_messages"),
    "server_rss_end_bytes": ("server", "end", "rss_bytes"),
    "machine_busy_pct": ("host_cpu", "busy_pct"),
    "generator_cpu_per_delivery_us": ("generator", "cpu_per_delivery_us"),
}
systems = list(meta["systems"])
rounds = sorted({r["round"] for r in runs})
summary = {}
for s in systems:
    summary[s] = {}
    for m, path in fanout_metrics.items():
        summary[s][m] = median(get(run_of(s, "fanout", n), *path) for n in rounds)
    w, msg = summary[s]["wire_bytes_per_delivery"], summary[s]["message_bytes_per_delivery"]
    summary[s]["compression_ratio"] = round(msg / w, 3) if w and msg else None
    answer = next((get(r["report"], "compression", "answer") for r in runs
                   if r["system"] == s and get(r["report"], "compression", "answer")), None)
    summary[s]["answer"] = answer

idle_names = []
for r in runs:
    if r["scenario"].startswith("idle-") and (r["system"], r["scenario"]) not in idle_names:
        idle_names.append((r["system"], r["scenario"]))
idle = {}
for s, name in idle_names:
    key = f"{s} {name}"
    idle[key] = {
        "rss_per_conn_bytes": median(get(run_of(s, name, n), "server", "rss_per_conn_bytes") for n in rounds),
        "negotiated": median(get(run_of(s, name, n), "compression", "negotiated") for n in rounds),
        "opened": median(get(run_of(s, name, n), "connect", "opened") for n in rounds),
    }


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


# Ratios within each round.
per_round = []
for n in rounds:
    on, off, cf = (run_of("shardgate-on", "fanout", n), run_of("shardgate-off", "fanout", n),
                   run_of("centrifugo", "fanout", n))
    neg, plain = run_of("shardgate-on", "idle-negotiated", n), run_of("shardgate-on", "idle-plain", n)
    cpu = ("fanout", "server_cpu_per_delivery_us")
    wire = ("fanout", "wire", "bytes_per_delivery")
    per_round.append({
        "round": n,
        "cpu_on_over_off": ratio(get(on, *cpu), get(off, *cpu)),
        "wire_on_over_off": ratio(get(on, *wire), get(off, *wire)),
        "cpu_centrifugo_over_on": ratio(get(cf, *cpu), get(on, *cpu)),
        "wire_centrifugo_over_on": ratio(get(cf, *wire), get(on, *wire)),
        "idle_rss_negotiated_over_plain": ratio(get(neg, "server", "rss_per_conn_bytes"), get(plain, "server", "rss_per_conn_bytes")),
        "idle_rss_negotiated_minus_plain_bytes": (
            round(get(neg, "server", "rss_per_conn_bytes") - get(plain, "server", "rss_per_conn_bytes"), 1)
            if get(neg, "server", "rss_per_conn_bytes") is not None and get(plain, "server", "rss_per_conn_bytes") is not None else None),
    })
ratios = {k: median(r[k] for r in per_round) for k in per_round[0]} if per_round else {}
ratios.pop("round", None)

acceptance = None
if "shardgate-on" in systems and "shardgate-off" in systems:
    c, w = ratios.get("cpu_on_over_off"), ratios.get("wire_on_over_off")
    acceptance = {
        "cpu_per_delivery_on_over_off": c, "cpu_max": 1.2, "cpu_met": c is not None and c <= 1.2,
        "wire_per_delivery_on_over_off": w, "wire_max": 0.5, "wire_met": w is not None and w <= 0.5,
        "rounds_cpu_met": sum(1 for r in per_round if r["cpu_on_over_off"] is not None and r["cpu_on_over_off"] <= 1.2),
        "rounds_wire_met": sum(1 for r in per_round if r["wire_on_over_off"] is not None and r["wire_on_over_off"] <= 0.5),
        "rounds": len(per_round),
    }

for r in runs:  # keep the report portable: no temporary paths
    r["server_command"] = r["server_command"].replace(raw.rstrip("/"), "$RAW")
    r["bench_command"] = r["bench_command"].replace(raw.rstrip("/"), "$RAW")
    if r["report"]:
        r["report"] = json.loads(json.dumps(r["report"]).replace(raw.rstrip("/"), "$RAW"))
doc = {"meta": meta, "summary": summary, "idle": idle, "ratios_median_of_rounds": ratios, "per_round": per_round,
       "acceptance": acceptance, "runs": runs}
with open(out + ".json", "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")


def fmt(v, unit=""):
    if v is None:
        return "-"
    if unit == "KiB":
        return f"{v / 1024:,.2f} KiB"
    if unit == "MiB":
        return f"{v / 1048576:,.0f} MiB"
    if unit == "B":
        return f"{v:,.0f} B"
    if unit == "%":
        return f"{v:,.2f} %"
    if unit == "%0":
        return f"{v:,.0f} %"
    if unit == "x":
        return f"{v:.2f} ×"
    if unit == "ms":
        return f"{v:,.1f} ms" if v >= 10 else f"{v:,.2f} ms"
    if unit == "":
        return f"{v:,.0f}"
    return f"{v:,.2f} {unit}"


conns, rate, size = meta["conns"], meta["rate"], meta["size"]
label = {"shardgate-on": "shardgate `-compression on`", "shardgate-off": "shardgate `-compression off`",
         "centrifugo": f"Centrifugo {meta.get('centrifugo') or 'v6'}, compression on"}
L = ["# permessage-deflate (RFC 7692): shardgate with and without compression, and Centrifugo", ""]
for note in meta.get("notes", []):
    L.append(f"**{note}**")
    L.append("")
L.append(f"Command: `{meta['command']}` ({meta['started']}); shardgate at {meta['shardgate_commit']}.")
L.append("")
L.append(f"Machine: {meta['machine']}; the load generator ran on the same cores "
         f"({meta['procs']} worker processes, source addresses {meta['source_ips']}).")
L.append(f"Load before the run: `{meta['load_before']}`; after: `{meta['load_after']}`.")
L.append("")
L.append("Servers, a fresh process for every run:")
L.append("")
if "shardgate-on" in systems:
    L.append(f"- shardgate-on: `{meta['shardgate_on']}`")
if "shardgate-off" in systems:
    L.append(f"- shardgate-off: `{meta['shardgate_off']}`")
if "centrifugo" in systems:
    L.append(f"- centrifugo: `{meta['centrifugo_command']}` (bench/peers/centrifugo/config.json, in-memory engine; "
             "`websocket.compression` on, `compression_min_size` 256, `compression_level` 1: each message compressed "
             "per connection, as Centrifugo v6 does)")
L.append("")
L.append(f"Fan-out: `{meta['fanout']}`: {conns:,} subscribers of one channel, {rate:g} messages/s of {size:,} bytes "
         f"of JSON data for {meta['duration']}, every client offering `permessage-deflate; client_no_context_takeover; "
         "client_max_window_bits`. The data (`shardbench -payload json`) is an order book update: instrument, sequence, "
         "last trade, then price levels alternating bid and ask (prices a few ticks apart, sizes in round lots, order "
         "counts), drawn per message from a generator seeded with its sequence number; each message deflates on its "
         "own about 3.4× at level 1 (3.7× at level 6), as real JSON of that size does. Each server wraps it in its own "
         "envelope (shardgate `{\"type\":\"message\",\"channel\":…,\"data\":…}`, Centrifugo "
         "`{\"push\":{\"channel\":…,\"pub\":{\"data\":…}}}`).")
L.append("")
L.append("- server CPU per delivery: the server's `process_cpu_seconds_total` over the measured phase (first publish "
         "until every message was in), divided by the messages delivered.")
L.append("- bytes on the wire per delivery: what the clients read from their sockets in that phase (whole frames, "
         "headers included, and whatever else the server sent meanwhile, such as pings), divided by the messages "
         "delivered; the message bytes are the same messages after inflation.")
L.append(f"- {meta['rounds']} round(s); each round runs every system once, each round led by the next system; "
         "figures are medians of the rounds, ratios are taken within each round and their median is shown.")
L.append("")

L.append(f"## Fan-out: {conns:,} subscribers × {rate:g} messages/s of {size:,} B JSON")
L.append("")
L.append("| | " + " | ".join(label[s] for s in systems) + " |")
L.append("|---|" + "---:|" * len(systems))
rows = [
    ("server CPU per delivery", "server_cpu_per_delivery_us", "µs"),
    ("bytes on the wire per delivery", "wire_bytes_per_delivery", "B"),
    ("message bytes per delivery (after inflation)", "message_bytes_per_delivery", "B"),
    ("wire ÷ message: compression", "compression_ratio", "x"),
    ("delivered / expected", "delivered_pct", "%"),
    ("deliveries per second", "deliveries_per_second", ""),
    ("publishes late (over one interval behind schedule)", "publishes_late", ""),
    ("latency p50", "latency_p50_ms", "ms"),
    ("latency p90", "latency_p90_ms", "ms"),
    ("latency p99", "latency_p99_ms", "ms"),
    ("latency p99.9", "latency_p99_9_ms", "ms"),
    ("latency max", "latency_max_ms", "ms"),
    ("upgrades that negotiated permessage-deflate", "negotiated", ""),
    ("messages that arrived compressed", "compressed_messages", ""),
    ("machine CPU busy in the measured phase", "machine_busy_pct", "%0"),
    ("load generator CPU per delivery", "generator_cpu_per_delivery_us", "µs"),
]
for name, m, unit in rows:
    L.append(f"| {name} | " + " | ".join(fmt(summary[s][m], unit) for s in systems) + " |")
L.append("")
for s in systems:
    a = summary[s]["answer"]
    L.append(f"- {s}: " + (f"answered `{a}`" if a else "declined the offer (101 without the extension)"))
for s in systems:
    late, dps = summary[s]["publishes_late"], summary[s]["deliveries_per_second"]
    if late:
        L.append(f"- {s} fell behind the publish schedule ({late:,.0f} of {summary[s]['published'] or 0:,.0f} publishes "
                 "more than one interval late: the publisher sends the next message once the server has answered the "
                 f"last): its figures are those of the rate it reached, {dps:,.0f} deliveries/s, not of the "
                 f"{conns * rate:,.0f}/s asked.")
busy = [summary[s]["machine_busy_pct"] for s in systems if summary[s]["machine_busy_pct"] is not None]
if busy and max(busy) > 90:
    L.append("- The two cores were busy in the measured phase (server, load generator and the loopback network's "
             "softirq work together): latencies include waiting for a CPU. Server CPU per delivery is the server "
             "process's own time.")
L.append("- The load generator inflates each distinct compressed message once per worker process: a broadcast's "
         "copies arrive as the same bytes (bench/client, deflate.go); every copy is still parsed and counted.")
L.append("")

if acceptance:
    L.append("## Acceptance (issue #11)")
    L.append("")
    c, w = acceptance["cpu_per_delivery_on_over_off"], acceptance["wire_per_delivery_on_over_off"]
    L.append(f"- CPU per delivery, shardgate on ÷ off: **{fmt(c, 'x')}** (at most 1.20 ×): "
             f"{'met' if acceptance['cpu_met'] else 'MISSED'} (met in {acceptance['rounds_cpu_met']} of {acceptance['rounds']} rounds)")
    L.append(f"- bytes on the wire per delivery, shardgate on ÷ off: **{fmt(w, 'x')}** (at most 0.50 ×): "
             f"{'met' if acceptance['wire_met'] else 'MISSED'} (met in {acceptance['rounds_wire_met']} of {acceptance['rounds']} rounds)")
    L.append("")

if idle:
    L.append(f"## Idle connections: server RSS per connection ({conns:,} held {meta['hold']})")
    L.append("")
    L.append("| | RSS per idle connection | upgrades that negotiated permessage-deflate |")
    L.append("|---|---:|---:|")
    names = {"idle-negotiated": "extension negotiated", "idle-plain": "no extension (client offers none)"}
    for key, v in idle.items():
        s, name = key.split(" ", 1)
        L.append(f"| {label.get(s, s)}, {names.get(name, name)} | {fmt(v['rss_per_conn_bytes'], 'B')} | {fmt(v['negotiated'])} |")
    L.append("")

if per_round:
    L.append("## Each round")
    L.append("")
    cols = [("cpu_on_over_off", "CPU/delivery on ÷ off"), ("wire_on_over_off", "wire/delivery on ÷ off"),
            ("cpu_centrifugo_over_on", "CPU/delivery Centrifugo ÷ shardgate on"),
            ("wire_centrifugo_over_on", "wire/delivery Centrifugo ÷ shardgate on"),
            ("idle_rss_negotiated_minus_plain_bytes", "idle RSS negotiated − plain (B/conn)")]
    cols = [(k, t) for k, t in cols if any(r[k] is not None for r in per_round)]
    if cols:
        L.append("| round | " + " | ".join(t for _, t in cols) + " |")
        L.append("|---|" + "---:|" * len(cols))
        for r in per_round:
            L.append(f"| {r['round']} | " + " | ".join("-" if r[k] is None else f"{r[k]:g}" for k, _ in cols) + " |")
        L.append(f"| median | " + " | ".join("-" if ratios.get(k) is None else f"{ratios[k]:g}" for k, _ in cols) + " |")
        L.append("")
    L.append("| round | system | machine busy before | server CPU/delivery | wire B/delivery | delivered | p50 | p99 | machine busy during |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in rounds:
        for s in systems:
            rep = run_of(s, "fanout", n)
            busy = next((r["busy_before_pct"] for r in runs if r["system"] == s and r["scenario"] == "fanout" and r["round"] == n), None)
            L.append(f"| {n} | {s} | {fmt(busy, '%0')} | {fmt(get(rep, 'fanout', 'server_cpu_per_delivery_us'), 'µs')} | "
                     f"{fmt(get(rep, 'fanout', 'wire', 'bytes_per_delivery'), 'B')} | "
                     f"{fmt(get(rep, 'fanout', 'delivered_pct'), '%')} | {fmt(get(rep, 'fanout', 'latency', 'p50_ms'), 'ms')} | "
                     f"{fmt(get(rep, 'fanout', 'latency', 'p99_ms'), 'ms')} | {fmt(get(rep, 'host_cpu', 'busy_pct'), '%0')} |")
    L.append("")
    L.append("Machine busy before: the CPUs over 2 s just before the run's server started (the script waits for "
             "other work on the machine to end); during: the whole machine in the measured phase, server and load "
             "generator included.")
    L.append("")

failed = [r for r in runs if r["status"] != "ok"]
warned = [(r, w) for r in runs if r["report"] for w in r["report"].get("warnings", [])]
if failed or warned:
    L.append("## Failures and warnings")
    L.append("")
    for r in failed:
        L.append(f"- {r['system']} {r['scenario']} round {r['round']}: {r['status']}")
    for r, w in warned:
        L.append(f"- {r['system']} {r['scenario']} round {r['round']}: {w}")
    L.append("")
L.append(f"Raw shardbench reports: `{os.path.basename(out)}.json` (`runs`).")
with open(out + ".md", "w") as f:
    f.write("\n".join(L) + "\n")
