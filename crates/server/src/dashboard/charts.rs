//! The dashboard's charts: SVG drawn on the server by `charts-rs`, so a page needs no
//! script, no charting file in the repository and no CDN. charts-rs measures text with the
//! font it embeds (no system fonts) and escapes every label it writes; this module only
//! chooses what to draw and makes each chart readable without sight: `role="img"`, an
//! `aria-label` and a `<title>` that say the same numbers as the table beside it.

use charts_rs::{HorizontalBarChart, Series};

/// Widest label drawn in a chart (segment values can be long; the table has them whole).
const LABEL_CHARS: usize = 24;

/// One bar: its label, its value and the text written at its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Category label, e.g. a step or a segment value.
    pub label: String,
    /// Length of the bar.
    pub value: f64,
}

/// A horizontal bar chart of `bars` (first bar on top) as inline SVG, labelled with
/// `summary` for assistive technology. `percent`: values are 0–100 and labelled with `%`.
/// `None` when charts-rs could not draw it (the table beside it still has the numbers).
pub fn bar_chart(bars: &[Bar], summary: &str, percent: bool) -> Option<String> {
    if bars.is_empty() {
        return None;
    }
    // charts-rs draws the first category at the bottom; a funnel reads top down.
    let labels: Vec<String> = bars.iter().rev().map(|b| short(&b.label)).collect();
    let values: Vec<f32> = bars.iter().rev().map(|b| b.value as f32).collect();
    let series: Series = ("value", values).into();
    let mut chart = HorizontalBarChart::new(vec![series], labels);
    chart.width = 560.0;
    chart.height = 40.0 + 34.0 * bars.len() as f32;
    chart.legend.show = Some(false);
    // The bar's own label carries its value; a value axis with fractional ticks would not help.
    chart.x_axis.hidden = true;
    chart.grid.stroke_width = 0.0;
    chart.margin.right = 56.0;
    if let Some(series) = chart.series_list.first_mut() {
        series.label_show = true;
    }
    if percent {
        chart.series.label.formatter = "{c}%".into();
    }
    match chart.svg() {
        Ok(svg) => Some(accessible(&svg, summary)),
        Err(e) => {
            tracing::warn!(error = %e, "drawing a dashboard chart failed");
            None
        }
    }
}

/// Adds `role="img"`, `aria-label` and a `<title>` to an SVG document, and a class the
/// stylesheet scales to the page width.
fn accessible(svg: &str, summary: &str) -> String {
    let summary = escape_xml(summary);
    match svg.strip_prefix("<svg ") {
        Some(rest) => match rest.split_once('>') {
            Some((attrs, body)) => format!(
                "<svg class=\"chart\" role=\"img\" aria-label=\"{summary}\" focusable=\"false\" {attrs}>\
                 <title>{summary}</title>{body}"
            ),
            None => svg.to_owned(),
        },
        None => svg.to_owned(),
    }
}

/// At most [`LABEL_CHARS`] characters, with an ellipsis when cut.
fn short(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        return label.to_owned();
    }
    let mut s: String = label.chars().take(LABEL_CHARS - 1).collect();
    s.push('…');
    s
}

/// Text made safe for XML text and attribute values.
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The y coordinate of the `<text>` holding exactly `label`.
    fn label_y(svg: &str, label: &str) -> f64 {
        let end = svg.find(&format!(">\n{label}\n</text>")).unwrap_or(0);
        let start = svg[..end].rfind("<text").unwrap_or(0);
        let y = svg[start..end].split(" y=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("nan");
        y.parse().unwrap_or(f64::NAN)
    }

    fn bars(pairs: &[(&str, f64)]) -> Vec<Bar> {
        pairs.iter().map(|(l, v)| Bar { label: (*l).to_owned(), value: *v }).collect()
    }

    #[test]
    fn draws_labelled_bars_top_down() {
        let svg = bar_chart(&bars(&[("shown", 5.0), ("scanned", 4.0), ("session", 2.0)]), "Funnel: shown 5", false)
            .unwrap_or_default();
        assert!(svg.starts_with("<svg class=\"chart\" role=\"img\" aria-label=\"Funnel: shown 5\""), "{svg}");
        assert!(svg.contains("<title>Funnel: shown 5</title>"));
        assert!(svg.matches("<rect").count() >= 3);
        // First bar on top: the label "shown" is drawn above "session".
        assert!(label_y(&svg, "shown") < label_y(&svg, "session"), "{svg}");
        // No inline styles: the pages' Content-Security-Policy allows none.
        assert!(!svg.contains("style="));
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn labels_and_summaries_cannot_inject_markup() {
        let hostile = "<script>alert(1)</script>\"onload=\"x";
        let svg = bar_chart(&bars(&[(hostile, 3.0)]), hostile, true).unwrap_or_default();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(!svg.contains("\"onload=\""), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn nothing_to_draw_is_no_chart() {
        assert_eq!(bar_chart(&[], "empty", false), None);
    }

    #[test]
    fn long_labels_are_cut() {
        assert_eq!(short("short"), "short");
        assert_eq!(short(&"x".repeat(40)).chars().count(), LABEL_CHARS);
    }
}
