#!/usr/bin/env python3
"""Turns the raw results of bench/run.sh (a directory) into one markdown report on stdout."""

import json
import os
import statistics
import sys

TARGETS = ["direct", "nginx", "flywheel"]


def load(raw, name):
    path = os.path.join(raw, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def meta(raw):
    m = {}
    with open(os.path.join(raw, "meta.env")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            m[k] = v
    return m


def pct(values, p):
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def answered(oha):
    """Responses received (any status), non-2xx among them, and transport errors."""
    if oha is None:
        return 0, 0, 0
    codes = {int(k): v for k, v in (oha.get("statusCodeDistribution") or {}).items()}
    n = sum(codes.values())
    non2xx = sum(v for k, v in codes.items() if not 200 <= k < 300)
    errors = sum((oha.get("errorDistribution") or {}).values())
    return n, non2xx, errors


def f(x, nd=2):
    if x is None or x != x:
        return "n/a"
    return f"{x:.{nd}f}"


def signed(x, nd=2):
    if x is None or x != x:
        return "n/a"
    return f"{x:+.{nd}f}"


CASES = {
    # name: (file and meta-key prefix, title, closed-loop description)
    "small": ("", "Small payload", "60-byte chat body, ~285-byte answer"),
    "realistic": ("real_", "Realistic payload", None),
}


def case_rows(raw, m, case, rounds):
    """Per-target figures of one case, or None when the case did not run."""
    p = CASES[case][0]
    if load(raw, f"{p}closed_nginx_1.json") is None:
        return None
    tck = int(m["clk_tck"])
    stream = load(raw, f"{p}stream.json") or {}
    control = (load(raw, "stream_usage.json") or {}) if case == "small" else {}
    r = {}
    for t in TARGETS:
        closed = [load(raw, f"{p}closed_{t}_{i}.json") for i in range(1, rounds + 1)]
        opn = [load(raw, f"{p}open_{t}_{i}.json") for i in range(1, rounds + 1)]
        n_closed = sum(answered(c)[0] for c in closed)
        bad = sum(answered(c)[1] for c in closed + opn)
        errors = sum(answered(c)[2] for c in closed + opn)
        s = stream.get(t, {})
        med = lambda runs, key, q: statistics.median(x[key][q] * 1e3 for x in runs)
        row = {
            # throughput over all rounds; latency percentiles: median over the rounds
            "rps": n_closed / sum(c["summary"]["total"] for c in closed),
            "rps_rounds": [c["summary"]["requestsPerSec"] for c in closed],
            "p50": med(closed, "latencyPercentiles", "p50"),
            "p99": med(closed, "latencyPercentiles", "p99"),
            "n_closed": n_closed,
            "open_p50": med(opn, "latencyPercentiles", "p50"),
            "open_p99": med(opn, "latencyPercentiles", "p99"),
            "open_p99_rounds": [x["latencyPercentiles"]["p99"] * 1e3 for x in opn],
            "ttfb_p50": pct(s.get("ttfb", []), 50),
            "ttfb_p99": pct(s.get("ttfb", []), 99),
            "total_p50": pct(s.get("total", []), 50),
            "total_p99": pct(s.get("total", []), 99),
            "bad": bad + s.get("non2xx", 0) + control.get(t, {}).get("non2xx", 0),
            "errors": errors + s.get("errors", 0) + control.get(t, {}).get("errors", 0),
        }
        ticks = [m.get(f"{p}cpu_ticks_closed_{t}_{i}") for i in range(1, rounds + 1)]
        row["cpu_us"] = (sum(int(x) for x in ticks) / tck * 1e6 / n_closed
                         if all(ticks) and n_closed else None)
        busy = [m.get(f"{p}machine_busy_closed_{t}_{i}") for i in range(1, rounds + 1)]
        row["busy"] = statistics.mean(float(x) for x in busy) if all(busy) else None
        r[t] = row

    d, ng = r["direct"], r["nginx"]
    for t in ("nginx", "flywheel"):
        x = r[t]
        x["open_add_p50"] = x["open_p50"] - d["open_p50"]
        x["open_add_p99"] = x["open_p99"] - d["open_p99"]
        x["ttfb_add"] = x["ttfb_p50"] - d["ttfb_p50"]
        x["ttfb_add_p99"] = x["ttfb_p99"] - d["ttfb_p99"]
        x["total_add"] = x["total_p50"] - d["total_p50"]
        x["total_add_p99"] = x["total_p99"] - d["total_p99"]
        x["vs_nginx"] = x["rps"] / ng["rps"]
    d["vs_nginx"] = d["rps"] / ng["rps"]
    kb = lambda key: int(m.get(f"{case}_{key}") or 0) / 1024
    r["rss"] = {"flywheel": kb("rss_flywheel_kb"), "nginx": kb("rss_nginx_kb"),
                "nginx_worker": kb("rss_nginx_worker_max_kb")}
    return r


def case_table(w, m, case, r, rounds):
    """Writes one case's table and its per-round lines."""
    p, title, closed_what = CASES[case]
    if case == "small":
        stream_what = f"`x-mock: {m['stream_mock']}`, {m['stream_requests']} requests, `hello`"
    else:
        sizes = [int(x) for x in m.get("real_body_sizes", "").split()]
        size_range = f"{min(sizes)}–{max(sizes)} bytes, mean {statistics.mean(sizes):.0f}" if sizes else "n/a"
        closed_what = (f"{len(sizes)} chat bodies of {size_range} (system prompt, history, question; "
                       f"oha picks one per request), `x-mock: {m.get('real_mock')}` "
                       f"({m.get('real_answer_bytes') or 'n/a'}-byte answer with usage details)")
        stream_what = (f"`x-mock: {m.get('real_stream_mock')}` ({m.get('real_stream_bytes') or 'n/a'} "
                       f"bytes streamed to direct), {m.get('real_stream_requests')} requests, the "
                       "same bodies in turn")
    w(f"### {title}")
    w("")
    w(f"Closed loop: {m['conns']} connections, {m[p + 'duration']} s per target, {closed_what}. "
      f"Open loop: {m['open_rate']} req/s, {m['open_conns']} connections, {m[p + 'open_duration']} s, "
      f"latency-corrected. Both in {rounds} rounds with the targets taking turns: req/s over all "
      f"rounds, latency percentiles the median of the rounds' percentiles. Streaming: {stream_what}, "
      f"sequential on one keep-alive connection per target, round-robin over the targets. "
      f"Added = target minus direct, same run. Peak RSS: during this case.")
    w("")
    w("| target | closed req/s | vs nginx | closed p50 ms | closed p99 ms | proxy CPU µs/req "
      "| open p50 ms | open p99 ms | open added p50 / p99 ms "
      "| stream TTFB p50 ms | added TTFB p50 / p99 ms | stream total p50 ms | added total p50 / p99 ms "
      "| peak RSS MiB | non-2xx / errors |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rss = r["rss"]
    for t in TARGETS:
        x = r[t]
        if t == "direct":
            add_o = add_t = add_tot = "—"
            mem = "—"
        else:
            add_o = f"{signed(x['open_add_p50'], 3)} / {signed(x['open_add_p99'], 3)}"
            add_t = f"{signed(x['ttfb_add'], 3)} / {signed(x['ttfb_add_p99'], 3)}"
            add_tot = f"{signed(x['total_add'], 3)} / {signed(x['total_add_p99'], 3)}"
            mem = (f"{rss['nginx']:.1f} (all {int(m.get('nginx_processes', 1))} procs; worker max "
                   f"{rss['nginx_worker']:.1f})" if t == "nginx" else f"{rss['flywheel']:.1f}")
        w(f"| {t} | {x['rps']:.0f} | {x['vs_nginx']:.2f}× | {f(x['p50'], 3)} | {f(x['p99'], 3)} "
          f"| {f(x['cpu_us'], 1) if x['cpu_us'] is not None else '—'} "
          f"| {f(x['open_p50'], 3)} | {f(x['open_p99'], 3)} | {add_o} "
          f"| {f(x['ttfb_p50'], 3)} | {add_t} | {f(x['total_p50'], 2)} | {add_tot} "
          f"| {mem} | {x['bad']} / {x['errors']} |")
    w("")
    w("Machine CPU busy during the closed loop (all processes, all CPUs): " + "; ".join(
        f"{t} {r[t]['busy'] * 100:.0f}%" for t in TARGETS if r[t]["busy"] is not None) + ".")
    w("")
    backlog = [m.get(f"{p}backlog_flywheel_{i}") for i in range(1, rounds + 1)]
    drain = [m.get(f"{p}drain_ms_flywheel_{i}") for i in range(1, rounds + 1)]
    if all(backlog) and all(drain):
        w("Flywheel's capture queue at the end of each closed-loop turn: " + " / ".join(backlog)
          + " records, drained in " + " / ".join(f"{int(x) / 1000:.1f}" for x in drain)
          + " s before its CPU time was read (the writer's catch-up counts in CPU per request, "
          "not in req/s).")
        w("")
    w("Per round, closed-loop req/s: " + "; ".join(
        f"{t} " + " / ".join(f"{x:.0f}" for x in r[t]["rps_rounds"]) for t in TARGETS)
      + ". Open-loop p99 ms: " + "; ".join(
        f"{t} " + " / ".join(f"{x:.3f}" for x in r[t]["open_p99_rounds"]) for t in TARGETS) + ".")
    turns = sorted(a / b for a, b in zip(r["flywheel"]["rps_rounds"], r["nginx"]["rps_rounds"]) if b)
    if turns:
        mid = len(turns) // 2
        median = turns[mid] if len(turns) % 2 else (turns[mid - 1] + turns[mid]) / 2
        w(f"Flywheel vs nginx turn by turn: median {median:.3f}×, range {turns[0]:.3f}–{turns[-1]:.3f}× "
          f"over {len(turns)} turns (a turn's two runs are close in time; the ratio of the totals above "
          f"is the figure checked).")
    w("")


def main():
    raw = sys.argv[1]
    m = meta(raw)
    rounds = int(m.get("rounds", 1))
    cases = {c: case_rows(raw, m, c, rounds) for c in CASES}
    cases = {c: r for c, r in cases.items() if r is not None}
    control = load(raw, "stream_usage.json") or {}

    # capture check: every response flywheel gave must be a row in the database
    fw_answered = 0
    names = ["profile_flywheel.json"]
    for p, _, _ in CASES.values():
        names.append(f"{p}warmup_flywheel.json")
        names += [f"{p}{k}_flywheel_{i}.json" for k in ("closed", "open") for i in range(1, rounds + 1)]
        fw_answered += (load(raw, f"{p}stream.json") or {}).get("flywheel", {}).get("ok", 0)
    for name in names:
        fw_answered += answered(load(raw, name))[0]
    fw_answered += control.get("flywheel", {}).get("ok", 0)
    captured = int(m.get("captured") or -1)
    dropped = m.get("dropped_total") or "n/a"
    loss = fw_answered - captured

    out = []
    w = out.append
    w(f"## Flywheel benchmark, {m.get('date')} (flywheel {m.get('flywheel_commit')}, binary built {m.get('flywheel_built')})")
    w("")
    w(f"Machine: {m.get('nproc')} CPUs, {m.get('cpu_model')}, {m.get('kernel')}. "
      f"nginx {m.get('nginx_version')} (worker_processes auto: {int(m.get('nginx_processes', 1)) - 1} "
      f"workers), oha {m.get('oha_version')}. Load generator, mock upstream and proxy share the CPUs. "
      f"Load average at start / end: {m.get('loadavg_start')} / {m.get('loadavg_end')}.")
    w("")
    for case, r in cases.items():
        case_table(w, m, case, r, rounds)

    w(f"Capture: flywheel answered {fw_answered} requests, the database holds {captured} interactions "
      f"after SIGTERM (exit code {m.get('flywheel_exit')}): **capture loss: {max(loss, 0)} of {fw_answered}**"
      + (f" ({-loss} more rows than answered requests)" if loss < 0 else "")
      + f"; flywheel_capture_dropped_total = {dropped}.")
    w("")
    small = cases.get("small")
    if control and small:
        cd = control["direct"]
        w(f"Streaming control ({m.get('stream_control_requests')} requests per target, small payload): "
          "the client itself sends `stream_options.include_usage=true`, so every target gets the same "
          "upstream events (flywheel otherwise adds it to record usage, and strips the extra usage "
          "event from the client's stream).")
        w("")
        w("| target | TTFB p50 ms | added TTFB p50 / p99 ms | total p50 ms | added total p50 / p99 ms |")
        w("|---|---:|---:|---:|---:|")
        for t in TARGETS:
            c = control[t]
            t50, t99 = pct(c["ttfb"], 50), pct(c["ttfb"], 99)
            o50, o99 = pct(c["total"], 50), pct(c["total"], 99)
            if t == "direct":
                w(f"| {t} | {f(t50, 3)} | — | {f(o50, 2)} | — |")
            else:
                dt50, dt99 = pct(cd["ttfb"], 50), pct(cd["ttfb"], 99)
                do50, do99 = pct(cd["total"], 50), pct(cd["total"], 99)
                w(f"| {t} | {f(t50, 3)} | {signed(t50 - dt50, 3)} / {signed(t99 - dt99, 3)} "
                  f"| {f(o50, 2)} | {signed(o50 - do50, 3)} / {signed(o99 - do99, 3)} |")
            if t == "flywheel":
                small["flywheel"]["ctl_total_add"] = o50 - do50
        w("")

    def check(name, goal, measured, ok):
        verdict = "—" if ok is None else ("met" if ok else "**MISSED**")
        w(f"| {name} | {goal} | {measured} | {verdict} |")

    rss_fw = max((r["rss"]["flywheel"] for r in cases.values()), default=0)
    w(f"Flywheel memory: peak RSS (VmHWM) {rss_fw:.1f} MiB; RSS at the end by kind (MiB): "
      f"{m.get('rss_flywheel_now', 'n/a').strip().rstrip(';')}; largest capture queue depth seen "
      f"(sampled once a second): {m.get('max_queue_depth') or 'n/a'}.")
    w("")
    w("| target | goal | measured | verdict |")
    w("|---|---|---|---|")
    if small:
        fw, ng = small["flywheel"], small["nginx"]
        check("closed-loop throughput", "≥ 0.80 × nginx", f"{fw['vs_nginx']:.3f} × nginx "
              f"({fw['rps']:.0f} vs {ng['rps']:.0f} req/s)", fw["vs_nginx"] >= 0.8)
        check("gateway CPU per request", "≤ 55 µs", f"{f(fw['cpu_us'], 1)} µs (nginx {f(ng['cpu_us'], 1)} µs)",
              fw["cpu_us"] is not None and fw["cpu_us"] <= 55)
        check(f"open loop {m['open_rate']}/s added p50", "≤ 0.2 ms", f"{signed(fw['open_add_p50'], 3)} ms "
              f"(nginx {signed(ng['open_add_p50'], 3)})", fw["open_add_p50"] <= 0.2)
        check(f"open loop {m['open_rate']}/s added p99", "≤ 1 ms", f"{signed(fw['open_add_p99'], 3)} ms "
              f"(nginx {signed(ng['open_add_p99'], 3)})", fw["open_add_p99"] <= 1.0)
        check("streaming added TTFB (p50)", "≤ 0.5 ms", f"{signed(fw['ttfb_add'], 3)} ms "
              f"(nginx {signed(ng['ttfb_add'], 3)})", fw["ttfb_add"] <= 0.5)
        check("streaming total vs direct (p50)", "within 1 ms", f"{signed(fw['total_add'], 3)} ms "
              f"(nginx {signed(ng['total_add'], 3)})", abs(fw["total_add"]) <= 1.0)
        if "ctl_total_add" in fw:
            check("streaming total vs direct, control (p50)", "within 1 ms",
                  f"{signed(fw['ctl_total_add'], 3)} ms", abs(fw["ctl_total_add"]) <= 1.0)
    real = cases.get("realistic")
    if real:
        fw, ng = real["flywheel"], real["nginx"]
        check("realistic: closed-loop throughput", "reported", f"{fw['vs_nginx']:.3f} × nginx "
              f"({fw['rps']:.0f} vs {ng['rps']:.0f} req/s)", None)
        check("realistic: gateway CPU per request", "≤ 55 µs",
              f"{f(fw['cpu_us'], 1)} µs (nginx {f(ng['cpu_us'], 1)} µs)",
              fw["cpu_us"] is not None and fw["cpu_us"] <= 55)
        check(f"realistic: open loop {m['open_rate']}/s added p99", "≤ 1 ms",
              f"{signed(fw['open_add_p99'], 3)} ms (nginx {signed(ng['open_add_p99'], 3)})",
              fw["open_add_p99"] <= 1.0)
    check("capture loss", "0", f"{max(loss, 0)} of {fw_answered} (dropped_total {dropped})",
          loss == 0 and dropped in ("0", "n/a"))
    check("peak RSS (VmHWM)", "≤ 64 MiB", f"{rss_fw:.1f} MiB", 0 < rss_fw <= 64)
    w("")
    # Ready to paste into the run log (bench/RESULTS.md), one row per case.
    w("Run log rows (bench/RESULTS.md):")
    w("")
    when = (m.get("date") or "")[5:16].replace("T", " ")
    for case, r in cases.items():
        d, ng, fw = r["direct"], r["nginx"], r["flywheel"]
        w(f"| {when} | {m.get('flywheel_commit')} | {case} | {d['rps']:,.0f} | {f(ng['cpu_us'], 1)} "
          f"| {f(fw['cpu_us'], 1)} | {fw['vs_nginx']:.2f}× | {signed(fw['open_add_p50'], 3)} / "
          f"{signed(fw['open_add_p99'], 3)} | {signed(fw['ttfb_add'], 3)} / {signed(fw['total_add'], 3)} "
          f"| {r['rss']['flywheel']:.1f} | {max(loss, 0)} of {fw_answered} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
