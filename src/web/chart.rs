//! Bar charts drawn by the server as SVG, shared by the dashboards: one
//! bar per item, in two stacked parts (the lower one first), scaled to the
//! tallest bar, each with a label (its figures) as the bar's `<title>`.
//! The page shows the same figures in a table beside the chart.

/// One bar in SVG units: its slot, its two stacked parts, its label.
pub struct Bar {
    pub x: String,
    pub width: String,
    pub low_y: String,
    pub low_height: String,
    pub high_y: String,
    pub high_height: String,
    pub label: String,
}

/// Chart size in SVG units (the templates' `viewBox` is 720 × 220).
pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 200.0;

/// Bars for `(low, high, label)` items, in order, scaled to the tallest.
pub fn bars(items: impl IntoIterator<Item = (i64, i64, String)>) -> Vec<Bar> {
    let items: Vec<(i64, i64, String)> = items.into_iter().collect();
    let highest = items
        .iter()
        .map(|(low, high, _)| low + high)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = WIDTH / items.len().max(1) as f64;
    let unit = |value: f64| format!("{value:.2}");
    items
        .into_iter()
        .enumerate()
        .map(|(index, (low, high, label))| {
            let low = low as f64 / highest * HEIGHT;
            let high = high as f64 / highest * HEIGHT;
            Bar {
                x: unit(index as f64 * slot + slot * 0.1),
                width: unit(slot * 0.8),
                low_y: unit(HEIGHT - low),
                low_height: unit(low),
                high_y: unit(HEIGHT - low - high),
                high_height: unit(high),
                label,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scaled to the tallest bar, slots share the width, labels kept.
    #[test]
    fn scales_to_the_tallest() {
        let drawn = bars([(3, 1, "a".to_owned()), (8, 0, "b".to_owned())]);
        assert_eq!(drawn.len(), 2);
        assert_eq!(drawn[1].low_height, "200.00");
        assert_eq!(drawn[0].low_height, "75.00");
        assert_eq!(drawn[0].high_y, "100.00");
        assert_eq!(drawn[1].x, "396.00");
        assert_eq!(drawn[1].label, "b");
        assert!(bars([]).is_empty());
        let empty = bars([(0, 0, "z".to_owned())]);
        assert_eq!(empty[0].low_height, "0.00");
    }
}
