//! Hand-written SVG line charts (no plotting dependency): throughput vs concurrency and
//! latency by percentile, with optional logarithmic axes.

use std::fmt::Write;

/// Chart size.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;

/// One line.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Stroke colour.
    pub color: &'static str,
    /// Stroke dash pattern (empty: solid).
    pub dash: &'static str,
    /// Points (x, y) in data units.
    pub points: Vec<(f64, f64)>,
}

/// An axis.
#[derive(Debug, Clone)]
pub struct Axis {
    /// Label.
    pub label: String,
    /// Logarithmic.
    pub log: bool,
    /// Tick positions and labels (data units); empty: automatic.
    pub ticks: Vec<(f64, String)>,
}

fn tf(v: f64, log: bool) -> f64 {
    if log { v.max(1e-12).log10() } else { v }
}

fn auto_ticks(lo: f64, hi: f64, log: bool) -> Vec<(f64, String)> {
    if log {
        let mut out = Vec::new();
        let mut e = lo.max(1e-12).log10().floor() as i32;
        while f64::from(e) <= hi.max(1e-12).log10().ceil() {
            let v = 10f64.powi(e);
            out.push((v, short(v)));
            e += 1;
        }
        out
    } else {
        let span = (hi - lo).max(1e-9);
        let raw = span / 5.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| span / s <= 6.0)
            .unwrap_or(mag * 10.0);
        let mut v = (lo / step).floor() * step;
        let mut out = Vec::new();
        while v <= hi + step * 0.01 {
            out.push((v, short(v)));
            v += step;
        }
        out
    }
}

/// A compact number: 1500 → 1.5k.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders a chart.
pub fn chart(title: &str, x: &Axis, y: &Axis, series: &[Series]) -> String {
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (px, py) in &pts {
        xmin = xmin.min(*px);
        xmax = xmax.max(*px);
        ymin = ymin.min(*py);
        ymax = ymax.max(*py);
    }
    if pts.is_empty() {
        (xmin, xmax, ymin, ymax) = (0.0, 1.0, 0.0, 1.0);
    }
    if !y.log {
        ymin = ymin.min(0.0);
        ymax *= 1.08;
    }
    if let Some((first, _)) = x.ticks.first() {
        xmin = xmin.min(*first);
    }
    if let Some((last, _)) = x.ticks.last() {
        xmax = xmax.max(*last);
    }
    let xticks = if x.ticks.is_empty() {
        auto_ticks(xmin, xmax, x.log)
    } else {
        x.ticks.clone()
    };
    let yticks = if y.ticks.is_empty() {
        auto_ticks(ymin, ymax, y.log)
    } else {
        y.ticks.clone()
    };
    if y.log {
        if let Some((v, _)) = yticks.first() {
            ymin = ymin.min(*v);
        }
        if let Some((v, _)) = yticks.last() {
            ymax = ymax.max(*v);
        }
    }
    let (x0, x1) = (tf(xmin, x.log), tf(xmax, x.log));
    let (y0, y1) = (tf(ymin, y.log), tf(ymax, y.log));
    let pw = WIDTH - LEFT - RIGHT;
    let ph = HEIGHT - TOP - BOTTOM;
    let sx = |v: f64| LEFT + (tf(v, x.log) - x0) / (x1 - x0).max(1e-12) * pw;
    let sy = |v: f64| TOP + ph - (tf(v, y.log) - y0) / (y1 - y0).max(1e-12) * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        LEFT + pw / 2.0,
        esc(title)
    );
    for (v, label) in &xticks {
        let px = sx(*v);
        let _ = writeln!(
            s,
            "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#e5e5e5\"/><text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            TOP + ph,
            TOP + ph + 16.0,
            esc(label)
        );
    }
    for (v, label) in &yticks {
        let py = sy(*v);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#e5e5e5\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + pw,
            LEFT - 6.0,
            py + 4.0,
            esc(label)
        );
    }
    let _ = writeln!(
        s,
        r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        HEIGHT - 12.0,
        esc(&x.label)
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(&y.label)
    );
    for (i, ser) in series.iter().enumerate() {
        if ser.points.is_empty() {
            continue;
        }
        let path: Vec<String> = ser
            .points
            .iter()
            .map(|(px, py)| format!("{:.1},{:.1}", sx(*px), sy(*py)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2" stroke-dasharray="{}"/>"#,
            path.join(" "),
            ser.color,
            ser.dash
        );
        if ser.points.len() <= 12 {
            for (px, py) in &ser.points {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                    sx(*px),
                    sy(*py),
                    ser.color
                );
            }
        }
        let ly = TOP + 10.0 + i as f64 * 18.0;
        let lx = LEFT + pw + 12.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2" stroke-dasharray="{}"/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            ser.color,
            ser.dash,
            lx + 30.0,
            ly + 4.0,
            esc(&ser.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let svg = chart(
            "t",
            &Axis {
                label: "x".into(),
                log: true,
                ticks: vec![],
            },
            &Axis {
                label: "y".into(),
                log: false,
                ticks: vec![],
            },
            &[Series {
                name: "a<b".into(),
                color: "red",
                dash: "",
                points: vec![(1.0, 2.0), (16.0, 5.0)],
            }],
        );
        assert!(svg.starts_with("<svg") && svg.contains("a&lt;b") && svg.contains("polyline"));
        assert_eq!(short(1500.0), "1.5k");
    }
}
