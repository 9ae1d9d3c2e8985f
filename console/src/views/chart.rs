//! The weekly expiry chart, drawn as SVG by the console (no script or stylesheet from
//! elsewhere), with the same figures as a table for screen readers.
//!
//! Its look is in `console.css` (classes, no `style` attributes: the Content-Security-Policy
//! allows no inline style). Positions are in the SVG's own units; it scales to its box.

use web_sys::Element;

use crate::dom::{add, attrs, el, svg, text};
use crate::json::ExpiryWeek;

/// The drawing's size in SVG units (its `viewBox`).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
/// Room above the tallest bar for its figure.
const MARGIN_TOP: f64 = 24.0;
/// Room below the axis for the dates.
const MARGIN_BOTTOM: f64 = 40.0;
/// Room left and right of the bars.
const MARGIN_SIDE: f64 = 16.0;

/// `MM-DD` of an RFC 3339 timestamp.
pub fn month_day(t: &str) -> &str {
    t.get(5..10).unwrap_or(t)
}

/// Bar heights in pixels for `counts`, the largest filling `height`.
pub fn bar_heights(counts: &[u64], height: f64) -> Vec<f64> {
    let max = counts.iter().copied().max().unwrap_or(0);
    counts
        .iter()
        .map(|&c| {
            if max == 0 {
                0.0
            } else {
                c as f64 / max as f64 * height
            }
        })
        .collect()
}

/// The bar chart, one bar per week. Screen readers get its title and a description with
/// the total (`role="img"`); the bars' figures are in [`weeks_table`].
pub fn weeks(weeks: &[ExpiryWeek]) -> Element {
    let chart = attrs(
        &svg("svg"),
        &[
            ("viewBox", &format!("0 0 {WIDTH} {HEIGHT}")),
            ("role", "img"),
            ("aria-labelledby", "chart-title chart-desc"),
            ("class", "chart"),
        ],
    );
    let total: u64 = weeks.iter().map(|w| w.count).sum();
    add(
        &chart,
        &[
            &attrs(&svg("title"), &[("id", "chart-title")]),
            &attrs(&svg("desc"), &[("id", "chart-desc")]),
        ],
    );
    if let Some(t) = chart.first_element_child() {
        t.set_text_content(Some("Certificates expiring in each of the coming weeks"));
    }
    if let Some(d) = chart.last_element_child() {
        d.set_text_content(Some(&format!(
            "{total} certificates expire in the {} weeks shown; the table below has each week.",
            weeks.len()
        )));
    }
    let plot = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let slot = (WIDTH - 2.0 * MARGIN_SIDE) / weeks.len().max(1) as f64;
    let counts: Vec<u64> = weeks.iter().map(|w| w.count).collect();
    let baseline = HEIGHT - MARGIN_BOTTOM;
    for (i, (w, h)) in weeks.iter().zip(bar_heights(&counts, plot)).enumerate() {
        let x = MARGIN_SIDE + i as f64 * slot;
        let bar = attrs(
            &svg("rect"),
            &[
                ("x", &format!("{:.1}", x + slot * 0.15)),
                ("y", &format!("{:.1}", baseline - h)),
                ("width", &format!("{:.1}", slot * 0.7)),
                ("height", &format!("{h:.1}")),
                ("class", "bar"),
            ],
        );
        // Hovering a bar says its week and count.
        let tip = svg("title");
        tip.set_text_content(Some(&format!(
            "week of {}: {}",
            month_day(&w.start),
            w.count
        )));
        add(&bar, &[&tip]);
        let value = label(x + slot / 2.0, baseline - h - 6.0, &w.count.to_string());
        let day = label(x + slot / 2.0, baseline + 18.0, month_day(&w.start));
        add(&chart, &[&bar, &value, &day]);
    }
    let axis = attrs(
        &svg("line"),
        &[
            ("x1", &MARGIN_SIDE.to_string()),
            ("x2", &(WIDTH - MARGIN_SIDE).to_string()),
            ("y1", &baseline.to_string()),
            ("y2", &baseline.to_string()),
            ("class", "axis"),
        ],
    );
    add(&chart, &[&axis])
}

/// A figure or date at (`x`, `y`), centred, hidden from screen readers (the table says it).
fn label(x: f64, y: f64, content: &str) -> Element {
    let t = attrs(
        &svg("text"),
        &[
            ("x", &format!("{x:.1}")),
            ("y", &format!("{y:.1}")),
            ("text-anchor", "middle"),
            ("aria-hidden", "true"),
        ],
    );
    t.set_text_content(Some(content));
    t
}

/// The chart's figures as a table (inside a disclosure, for whoever prefers numbers).
pub fn weeks_table(weeks: &[ExpiryWeek]) -> Element {
    let body = el("tbody");
    for w in weeks {
        add(
            &body,
            &[&add(
                &el("tr"),
                &[
                    &text("td", &crate::format::time(&w.start)),
                    &text("td", &w.count.to_string()),
                ],
            )],
        );
    }
    let head = add(
        &el("tr"),
        &[
            &attrs(&text("th", "Week starting"), &[("scope", "col")]),
            &attrs(&text("th", "Certificates expiring"), &[("scope", "col")]),
        ],
    );
    let table = add(&el("table"), &[&add(&el("thead"), &[&head]), &body]);
    add(
        &el("details"),
        &[&text("summary", "The figures as a table"), &table],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest() {
        assert_eq!(bar_heights(&[0, 5, 10], 100.0), vec![0.0, 50.0, 100.0]);
        assert_eq!(bar_heights(&[0, 0], 100.0), vec![0.0, 0.0]);
        assert_eq!(month_day("2026-11-29T21:45:00Z"), "11-29");
    }
}
