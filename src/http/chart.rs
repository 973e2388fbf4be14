//! Server-rendered SVG charts (no script, nothing fetched from elsewhere). The SVG is
//! built from numbers and dates only, so it can be placed in a page unescaped.

use std::fmt::Write;

use chrono::NaiveDateTime;

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;
const RIGHT: f64 = 12.0;

/// The adoption chart of one advisory: the share of concerned devices (affected or
/// fixed) that run a fixed version, over time. `points` are (time, fixed, affected),
/// oldest first.
pub fn adoption(points: &[(NaiveDateTime, i64, i64)]) -> String {
    let mut svg = format!(
        r#"<svg class="chart adoption" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Share of affected devices fixed over time">"#
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    for (share, label) in [(0.0, "0%"), (0.5, "50%"), (1.0, "100%")] {
        let y = TOP + plot_h * (1.0 - share);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#,
            WIDTH - RIGHT,
            LEFT - 4.0,
            y + 4.0
        );
    }
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        svg.push_str("</svg>");
        return svg;
    };
    let span = (last.0 - first.0).num_seconds().max(1) as f64;
    let coordinates: Vec<(f64, f64)> = points
        .iter()
        .map(|(at, fixed, affected)| {
            let concerned = fixed + affected;
            let share = if concerned == 0 {
                0.0
            } else {
                *fixed as f64 / concerned as f64
            };
            let x = LEFT + plot_w * ((*at - first.0).num_seconds() as f64 / span);
            (x, TOP + plot_h * (1.0 - share))
        })
        .collect();
    let path: Vec<String> = coordinates.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = write!(
        svg,
        r#"<polyline class="line" fill="none" points="{}"/>"#,
        path.join(" ")
    );
    if let Some((x, y)) = coordinates.last() {
        let _ = write!(svg, r#"<circle class="dot" cx="{x:.1}" cy="{y:.1}" r="3"/>"#);
    }
    let _ = write!(
        svg,
        r#"<text class="axis" x="{LEFT}" y="{:.1}">{}</text><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{}</text></svg>"#,
        HEIGHT - 6.0,
        first.0.format("%Y-%m-%d %H:%M:%S UTC"),
        WIDTH - RIGHT,
        HEIGHT - 6.0,
        last.0.format("%Y-%m-%d %H:%M:%S UTC")
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 28)
            .unwrap()
            .and_hms_opt(hour, 0, 0)
            .unwrap()
    }

    #[test]
    fn the_line_climbs_with_the_share_fixed() {
        let svg = adoption(&[(at(0), 0, 4), (at(1), 2, 2), (at(2), 4, 0)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        let points = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        let ys: Vec<f64> = points
            .split(' ')
            .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            ys,
            [TOP + HEIGHT - TOP - BOTTOM, TOP + (HEIGHT - TOP - BOTTOM) / 2.0, TOP]
        );
        assert!(svg.contains("2026-11-28 00:00") && svg.contains("2026-11-28 02:00"));
        assert!(!svg.contains('&'), "numbers and dates only");
    }

    #[test]
    fn no_points_is_an_empty_frame() {
        let svg = adoption(&[]);
        assert!(svg.ends_with("</svg>") && !svg.contains("polyline"));
    }
}
