//! The data a picture draws, beside it: CSV for spreadsheets and scripts, SVG line charts
//! for zooming into curves a PNG shows at one size.

use rolekd_core::files::csv_field;
use rolekd_core::files::write_atomic;
use rolekd_core::Result;
use std::fmt::Write as _;
use std::path::Path;

/// Writes `header` and `rows` as CSV to `path` (atomically).
pub fn write_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut text = header.join(",") + "\n";
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| csv_field(c)).collect();
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// One named line of (x, y) points.
pub struct Line {
    pub name: String,
    pub colour: [u8; 3],
    pub points: Vec<(f64, f64)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG line chart of `lines` over x in `[0, x_max]` and y in `[lo, hi]`, with a legend.
pub fn svg_lines(
    title: &str,
    x_label: &str,
    lines: &[Line],
    x_max: f64,
    lo: f64,
    hi: f64,
) -> String {
    let (w, h, left, top, pw, ph) = (960.0, 540.0, 70.0, 40.0, 640.0, 420.0);
    let span = (hi - lo).max(1e-9);
    let x = |v: f64| left + v / x_max.max(1e-9) * pw;
    let y = |v: f64| top + ph - (v - lo) / span * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{left}" y="24" font-size="15">{}</text>"#,
        esc(title)
    );
    for k in 0..=5 {
        let v = lo + span * k as f64 / 5.0;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" text-anchor="end">{v:.3}</text>"##,
            left + pw,
            left - 6.0,
            y(v) + 4.0,
            yy = y(v)
        );
    }
    let _ = write!(
        s,
        r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/><text x="{}" y="{}" text-anchor="middle">{}</text><text x="{left}" y="{}">0</text><text x="{}" y="{}" text-anchor="end">{x_max}</text>"#,
        left + pw / 2.0,
        top + ph + 30.0,
        esc(x_label),
        top + ph + 16.0,
        left + pw,
        top + ph + 16.0
    );
    for (i, l) in lines.iter().enumerate() {
        let [r, g, b] = l.colour;
        let pts: Vec<String> = l
            .points
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="rgb({r},{g},{b})" stroke-width="2" points="{}"><title>{}</title></polyline><rect x="{}" y="{}" width="12" height="12" fill="rgb({r},{g},{b})"/><text x="{}" y="{}">{}</text>"#,
            pts.join(" "),
            esc(&l.name),
            left + pw + 20.0,
            top + 18.0 * i as f64,
            left + pw + 38.0,
            top + 18.0 * i as f64 + 11.0,
            esc(&l.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.csv");
        write_csv(
            &p,
            &["a", "b"],
            &[
                vec!["1".into(), "x,y".into()],
                vec!["2".into(), "q\"".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "a,b\n1,\"x,y\"\n2,\"q\"\"\"\n"
        );
    }

    #[test]
    fn svg_has_one_polyline_per_line_inside_the_frame() {
        let lines = vec![
            Line {
                name: "a<b".into(),
                colour: [1, 2, 3],
                points: vec![(0.0, 0.5), (10.0, 0.9)],
            },
            Line {
                name: "c".into(),
                colour: [4, 5, 6],
                points: vec![(5.0, f64::NAN), (10.0, 0.7)],
            },
        ];
        let s = svg_lines("T", "EPOCH", &lines, 10.0, 0.5, 1.0);
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(s.contains("a&lt;b") && s.contains("rgb(4,5,6)"));
        // (0, 0.5) is the frame's bottom-left corner, (10, 0.9) 80% up its right edge.
        assert!(s.contains(r#"points="70.0,460.0 710.0,124.0""#), "{s}");
        assert!(s.contains(r#"points="710.0,292.0""#), "{s}");
    }
}
