//! `report.html`: the verdict, a timeline of operations and faults, a latency plot (both
//! hand-written SVG), the nemesis log and the checker's details. Self-contained: no scripts,
//! no external resources.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::history::{Event, EventType, pair};
use crate::nemesis::LogEntry;
use crate::runner::Verdict;
use crate::workload::Validity;

/// Most operations drawn; beyond that every n-th is drawn.
const OPS_DRAWN_MAX: usize = 15_000;
/// Width of the plots' drawing area, in pixels.
const PLOT_W: f64 = 1100.0;
/// Left margin for labels.
const MARGIN_L: f64 = 90.0;

/// A fault's active interval.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Start, ns since the test started.
    pub start_ns: f64,
    /// End.
    pub end_ns: f64,
    /// Kind name.
    pub kind: String,
    /// Short description.
    pub label: String,
}

/// Pairs `start` and `stop` entries of the nemesis log; a fault never stopped ends at the
/// final heal (or at `end_ns`).
pub fn fault_intervals(log: &[LogEntry], end_ns: f64) -> Vec<Interval> {
    let heal = log
        .iter()
        .find(|e| e.kind == "heal")
        .map_or(end_ns, |e| e.time_ns as f64);
    let mut out = Vec::new();
    for s in log.iter().filter(|e| e.phase == "start") {
        let end = log
            .iter()
            .find(|e| e.phase != "start" && e.phase != "plan" && e.id.is_some() && e.id == s.id)
            .map_or(heal, |e| e.time_ns as f64);
        out.push(Interval {
            start_ns: s.time_ns as f64,
            end_ns: end.max(s.time_ns as f64),
            kind: s.kind.clone(),
            label: describe(&s.detail),
        });
    }
    out
}

fn describe(detail: &Value) -> String {
    let fault = &detail["fault"];
    let mut s = fault["kind"].as_str().unwrap_or("?").to_owned();
    for key in ["split", "target", "mode"] {
        if !fault[key].is_null() {
            let _ = write!(s, " {}", compact(&fault[key]));
        }
    }
    if !detail["resolved"]["nodes"].is_null() {
        let _ = write!(s, " nodes={}", compact(&detail["resolved"]["nodes"]));
    }
    s
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn kind_color(kind: &str) -> &'static str {
    match kind {
        "partition" => "#7b68ee",
        "kill" => "#dc143c",
        "pause" => "#ff8c00",
        "loss" => "#20b2aa",
        "clock" => "#daa520",
        "disk" => "#8b4513",
        "member" => "#2e8b57",
        _ => "#888888",
    }
}

fn type_color(t: EventType) -> &'static str {
    match t {
        EventType::Ok => "#3a9a3a",
        EventType::Fail => "#e377c2",
        EventType::Info => "#ff9f1c",
        EventType::Invoke => "#999999",
    }
}

/// Writes the report.
pub fn write(
    path: &Path,
    verdict: &Verdict,
    history: &[Event],
    log: &[LogEntry],
) -> anyhow::Result<()> {
    let end_ns = history.last().map_or(1.0, |e| e.time_ns as f64).max(1.0);
    let faults = fault_intervals(log, end_ns);
    let mut h = String::new();
    let (badge, color) = match verdict.valid {
        Validity::Valid => ("VALID", "#2e7d32"),
        Validity::Invalid => ("ANOMALY FOUND", "#c62828"),
        Validity::Unknown => ("UNKNOWN", "#ef6c00"),
    };
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;margin:20px;}} .badge{{color:#fff;padding:4px 10px;\
         border-radius:4px;background:{color}}} table{{border-collapse:collapse}} \
         td,th{{border:1px solid #ccc;padding:2px 6px;font-size:12px;text-align:left}} \
         pre{{background:#f6f6f6;padding:8px;overflow:auto;max-height:500px;font-size:12px}} \
         .warn{{background:#fff3cd;padding:6px;border:1px solid #e0c060}}</style></head><body>",
        esc(&verdict.test)
    );
    let _ = write!(
        h,
        "<h1>{} <span class=\"badge\">{badge}</span></h1><p>{}</p>",
        esc(&verdict.test),
        esc(&verdict.checker.summary)
    );
    if let Some(note) = &verdict.net_note {
        let _ = write!(h, "<p class=\"warn\">{}</p>", esc(note));
    }
    if let Some(mode) = verdict.unsafe_mode {
        let _ = write!(
            h,
            "<p class=\"warn\">Nodes ran in the UNSAFE {} mode (self-check): an anomaly is expected.</p>",
            mode.name()
        );
    }
    let _ = write!(
        h,
        "<table><tr><th>workload</th><td>{:?}</td><th>nemesis</th><td>{}</td><th>skipped</th><td>{}</td></tr>\
         <tr><th>network</th><td>{}</td><th>nodes</th><td>{}</td><th>seed</th><td>{}</td></tr>\
         <tr><th>fault phase</th><td>{} s</td><th>heal phase</th><td>{} s</td><th>fault time</th><td>{} s</td></tr>\
         <tr><th>duration</th><td>{:.1} s</td><th>node exits</th><td>{}</td><th>ok ops, last 5 s</th><td>{}</td></tr></table>",
        verdict.workload,
        esc(&kinds(&verdict.nemesis)),
        esc(&kinds(&verdict.nemesis_skipped)),
        esc(&verdict.net),
        verdict.nodes,
        verdict.seed,
        verdict.time_limit_s,
        verdict.heal_s,
        verdict.fault_time_s,
        verdict.duration_s,
        verdict.node_exits.len(),
        verdict.ok_ops_end_of_heal,
    );
    h.push_str(
        "<h2>Timeline</h2><p>Bars: operations per worker lane, from invoke to completion \
        (green ok, pink fail, orange info = unknown outcome: drawn until the client gave up, it may \
        still take effect later). \
        Shaded bands: faults.</p>",
    );
    h.push_str(&timeline_svg(
        history,
        &faults,
        end_ns,
        verdict.concurrency.max(1) as u64,
    ));
    h.push_str(
        "<h2>Latency</h2><p>Each point is one completed operation (log scale); \
        circles ok, crosses fail/info.</p>",
    );
    h.push_str(&latency_svg(history, &faults, end_ns));
    h.push_str(&anomaly_tables(&verdict.checker.details));
    h.push_str("<h2>Checker</h2><pre>");
    h.push_str(&esc(&serde_json::to_string_pretty(
        &verdict.checker.details,
    )
    .unwrap_or_default()));
    h.push_str("</pre><h2>Nemesis log</h2><table><tr><th>time (s)</th><th>phase</th><th>kind</th><th>detail</th></tr>");
    for e in log.iter().filter(|e| e.phase != "plan") {
        let _ = write!(
            h,
            "<tr><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.time_ns as f64 / 1e9,
            esc(&e.phase),
            esc(&e.kind),
            esc(&e.detail.to_string())
        );
    }
    h.push_str("</table><p>Files: history.jsonl, nemesis.jsonl, verdict.json, nodes/n*/node.log</p></body></html>");
    std::fs::write(path, h)?;
    Ok(())
}

/// For each non-linearizable key: the operations around the one that could not be placed
/// (highlighted), oldest first.
fn anomaly_tables(details: &Value) -> String {
    let Some(keys) = details["non_linearizable"]
        .as_array()
        .filter(|k| !k.is_empty())
    else {
        return String::new();
    };
    let mut h = String::from(
        "<h2>Anomalies</h2><p>Per key: the operation no linearization can place (red), with \
         the operations that overlap it or ended shortly before it. A read must return the value \
         of the last write/CAS linearized before it.</p>",
    );
    for k in keys {
        let stuck = k["unlinearizable_op"]["index"].as_u64();
        let _ = write!(
            h,
            "<h3>key {} ({} ops; longest linearizable prefix {})</h3><table><tr><th>#</th>\
             <th>process</th><th>node</th><th>f</th><th>argument</th><th>type</th><th>result</th>\
             <th>invoked (ms)</th><th>completed (ms)</th></tr>",
            k["key"], k["ops"], k["longest_linearizable_prefix"]
        );
        let mut rows: Vec<&Value> = k["concurrent_ops"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        if !rows.iter().any(|r| r["index"].as_u64() == stuck) {
            rows.push(&k["unlinearizable_op"]);
        }
        rows.sort_by(|a, b| {
            a["invoke_ms"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b["invoke_ms"].as_f64().unwrap_or(0.0))
        });
        for r in rows {
            let style = if r["index"].as_u64() == stuck {
                " style=\"background:#fdd\""
            } else {
                ""
            };
            let _ = write!(
                h,
                "<tr{style}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td></tr>",
                r["index"],
                r["process"],
                r["node"],
                esc(r["f"].as_str().unwrap_or("")),
                esc(&r["arg"].to_string()),
                esc(r["type"].as_str().unwrap_or("")),
                esc(&r["result"].to_string()),
                r["invoke_ms"].as_f64().unwrap_or(0.0),
                r["complete_ms"]
                    .as_f64()
                    .map_or("-".to_owned(), |c| format!("{c:.1}")),
            );
        }
        h.push_str("</table>");
    }
    h
}

fn kinds(k: &[crate::nemesis::Kind]) -> String {
    if k.is_empty() {
        "none".into()
    } else {
        k.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
    }
}

fn x_of(t_ns: f64, end_ns: f64) -> f64 {
    MARGIN_L + (t_ns / end_ns).clamp(0.0, 1.0) * PLOT_W
}

fn time_axis(svg: &mut String, end_ns: f64, y: f64) {
    let end_s = end_ns / 1e9;
    let step = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|s| end_s / s <= 12.0)
        .unwrap_or(1200.0);
    let mut t = 0.0;
    while t <= end_s {
        let x = x_of(t * 1e9, end_ns);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{y}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#000\"/>\
             <text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{t}s</text>",
            y + 4.0,
            y + 15.0
        );
        t += step;
    }
}

fn fault_bands(svg: &mut String, faults: &[Interval], end_ns: f64, top: f64, height: f64) {
    for (k, f) in faults.iter().enumerate() {
        let x1 = x_of(f.start_ns, end_ns);
        let x2 = x_of(f.end_ns, end_ns).max(x1 + 1.0);
        let c = kind_color(&f.kind);
        let _ = write!(
            svg,
            "<rect x=\"{x1:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{height}\" fill=\"{c}\" \
             fill-opacity=\"0.12\"><title>{} ({:.1}s-{:.1}s)</title></rect>\
             <text x=\"{:.1}\" y=\"{}\" font-size=\"9\" fill=\"{c}\">{}</text>",
            x2 - x1,
            esc(&f.label),
            f.start_ns / 1e9,
            f.end_ns / 1e9,
            x1 + 1.0,
            top + 9.0 + (k % 4) as f64 * 10.0,
            esc(&f.kind)
        );
    }
}

/// Operations per worker lane with fault bands.
fn timeline_svg(history: &[Event], faults: &[Interval], end_ns: f64, workers: u64) -> String {
    let ops = pair(history);
    let mut lanes: Vec<u64> = ops.iter().map(|o| lane_of(o.invoke, workers)).collect();
    lanes.sort_unstable();
    lanes.dedup();
    let lane_h = 12.0;
    let top = 45.0;
    let height = top + lanes.len() as f64 * lane_h + 25.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\">",
        MARGIN_L + PLOT_W + 10.0
    );
    fault_bands(&mut svg, faults, end_ns, 0.0, height - 25.0);
    for (k, lane) in lanes.iter().enumerate() {
        let _ = write!(
            svg,
            "<text x=\"2\" y=\"{:.1}\" font-size=\"9\">{}</text>",
            top + k as f64 * lane_h + 9.0,
            if *lane >= 1_000_000 {
                "final".to_owned()
            } else {
                format!("worker {lane}")
            }
        );
    }
    let stride = ops.len().div_ceil(OPS_DRAWN_MAX).max(1);
    for o in ops.iter().step_by(stride) {
        let Some(k) = lanes.iter().position(|l| *l == lane_of(o.invoke, workers)) else {
            continue;
        };
        let t0 = o.invoke.time_ns as f64;
        let t = o.outcome();
        // An info op may still take effect later; it is drawn until the client gave up.
        let t1 = o.done.map_or(end_ns, |d| d.time_ns as f64);
        let x1 = x_of(t0, end_ns);
        let w = (x_of(t1, end_ns) - x1).max(1.0);
        let y = top + k as f64 * lane_h + 1.0;
        let result = o.done.map(|d| d.value.to_string()).unwrap_or_default();
        let _ = write!(
            svg,
            "<rect x=\"{x1:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\" fill-opacity=\"{}\">\
             <title>#{} p{} {} {} key={:?} arg={} -&gt; {} {:.3}s</title></rect>",
            lane_h - 3.0,
            type_color(t),
            0.9,
            o.invoke.index,
            o.invoke.process,
            esc(&o.invoke.f),
            esc(&format!("{t:?}")),
            o.invoke.key,
            esc(&truncate(&o.invoke.value.to_string(), 60)),
            esc(&truncate(&result, 60)),
            t0 / 1e9
        );
    }
    time_axis(&mut svg, end_ns, height - 22.0);
    svg.push_str("</svg>");
    svg
}

/// Worker lane of an event: a worker's processes differ by multiples of the worker count;
/// final reads get a lane of their own.
fn lane_of(e: &Event, workers: u64) -> u64 {
    if e.process >= 1_000_000 {
        1_000_000
    } else {
        e.process % workers
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_owned();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Latency (log scale) over time, with fault bands.
fn latency_svg(history: &[Event], faults: &[Interval], end_ns: f64) -> String {
    let height = 320.0;
    let top = 10.0;
    let plot_h = height - 40.0;
    // 0.1 ms .. 100 s on a log scale.
    let (lo, hi) = (-1.0_f64, 5.0_f64);
    let y_of =
        |ms: f64| top + plot_h * (1.0 - ((ms.max(0.1).log10() - lo) / (hi - lo)).clamp(0.0, 1.0));
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\">",
        MARGIN_L + PLOT_W + 10.0
    );
    fault_bands(&mut svg, faults, end_ns, top, plot_h);
    for (ms, label) in [
        (1.0, "1 ms"),
        (10.0, "10 ms"),
        (100.0, "100 ms"),
        (1000.0, "1 s"),
        (10_000.0, "10 s"),
    ] {
        let y = y_of(ms);
        let _ = write!(
            svg,
            "<line x1=\"{MARGIN_L}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"4\" y=\"{:.1}\" font-size=\"10\">{label}</text>",
            MARGIN_L + PLOT_W,
            y + 3.0
        );
    }
    let ops = pair(history);
    let stride = ops.len().div_ceil(OPS_DRAWN_MAX).max(1);
    let fs: Vec<String> = {
        let mut f: Vec<String> = ops.iter().map(|o| o.invoke.f.clone()).collect();
        f.sort();
        f.dedup();
        f
    };
    let palette = [
        "#1f77b4", "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#17becf",
    ];
    for o in ops.iter().step_by(stride) {
        let Some(d) = o.done else { continue };
        let ms = (d.time_ns.saturating_sub(o.invoke.time_ns)) as f64 / 1e6;
        let x = x_of(d.time_ns as f64, end_ns);
        let y = y_of(ms);
        let c = palette[fs.iter().position(|f| *f == o.invoke.f).unwrap_or(0) % palette.len()];
        if d.kind == EventType::Ok {
            let _ = write!(
                svg,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"1.5\" fill=\"{c}\"/>"
            );
        } else {
            let _ = write!(
                svg,
                "<path d=\"M{:.1} {:.1}l4 4m0 -4l-4 4\" stroke=\"{c}\" stroke-width=\"1\"/>",
                x - 2.0,
                y - 2.0
            );
        }
    }
    for (k, f) in fs.iter().enumerate() {
        let c = palette[k % palette.len()];
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{c}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
            MARGIN_L + PLOT_W - 80.0,
            top + 10.0 + k as f64 * 14.0,
            MARGIN_L + PLOT_W - 72.0,
            top + 14.0 + k as f64 * 14.0,
            esc(f)
        );
    }
    time_axis(&mut svg, end_ns, height - 28.0);
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(t: u64, phase: &str, id: Option<usize>, kind: &str) -> LogEntry {
        LogEntry {
            time_ns: t,
            phase: phase.into(),
            id,
            kind: kind.into(),
            detail: json!({"fault": {"kind": kind, "target": {"nodes": [1]}}}),
        }
    }

    #[test]
    fn pairs_fault_intervals() {
        let log = vec![
            entry(10, "start", Some(0), "kill"),
            entry(20, "start", Some(1), "partition"),
            entry(30, "stop", Some(0), "kill"),
            entry(50, "stop", None, "heal"),
        ];
        let iv = fault_intervals(&log, 100.0);
        assert_eq!(iv.len(), 2);
        assert_eq!((iv[0].start_ns, iv[0].end_ns), (10.0, 30.0));
        assert_eq!(iv[1].end_ns, 50.0, "open fault ends at the heal");
        assert!(iv[0].label.contains("kill"));
    }

    #[test]
    fn escapes() {
        assert_eq!(
            esc("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
