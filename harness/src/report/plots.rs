//! SVG plots (plotters, SVG backend, no system fonts): time series with fault windows shaded, and
//! HdrHistogram-style latency quantile curves.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::check::shards::ShardSpan;
use crate::check::{ClusterView, FaultWindow};

/// Line colours, in order: enough that the nightly suite's eleven workload × broker lines on a
/// trend plot each get their own.
pub const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(57, 59, 121),
    RGBColor(99, 121, 57),
];

pub struct Series {
    pub name: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, color: RGBColor, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            color,
            points: downsample(points, MAX_POINTS),
        }
    }
}

/// More points than pixels only makes the file bigger.
const MAX_POINTS: usize = 600;
const SIZE: (u32, u32) = (860, 280);

/// Average consecutive points into at most `max` buckets (keeps the shape, bounds the size).
pub fn downsample(points: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max {
        return points;
    }
    let per = points.len().div_ceil(max);
    points
        .chunks(per)
        .map(|c| {
            let n = c.len() as f64;
            (
                c.iter().map(|p| p.0).sum::<f64>() / n,
                c.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect()
}

fn shade_faults<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    faults: &[FaultWindow],
    x_max: f64,
    y: (f64, f64),
) -> Result<(), String> {
    let rows = label_rows(faults, x_max);
    for (f, row) in faults.iter().zip(rows) {
        let end = f.end_s.unwrap_or(x_max).max(f.start_s + 0.05);
        let color = if f.failed {
            RGBColor(120, 120, 120).mix(0.15)
        } else {
            RGBColor(214, 39, 40).mix(0.12)
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(f.start_s, y.0), (end, y.1)],
                color.filled(),
            )))
            .map_err(|e| e.to_string())?;
        let label = fault_label(f);
        // Each row of labels a line (about 13 px of a chart about 200 px high) lower.
        let at = y.1 - (y.1 - y.0) * 0.065 * row as f64;
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (f.start_s, at),
                ("sans-serif", 11).into_font().color(&RGBColor(150, 30, 30)),
            )))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn fault_label(f: &FaultWindow) -> String {
    format!("{}{}", f.kind, if f.failed { " (failed)" } else { "" })
}

/// The row each fault's label goes on, so that faults starting close together (or at once) do
/// not write over each other: the first row whose labels end before this one starts. A label is
/// about 6.5 px a character on a plot area about 600 px wide for `x_max` seconds.
fn label_rows(faults: &[FaultWindow], x_max: f64) -> Vec<usize> {
    let secs_per_char = 6.5 * x_max.max(1e-9) / 600.0;
    let spans: Vec<(f64, f64)> = faults
        .iter()
        .map(|f| {
            let width = fault_label(f).len() as f64 * secs_per_char;
            (f.start_s, f.start_s + width)
        })
        .collect();
    rows(&spans)
}

/// A row for each span (from, to), in order, so that no two spans on one row overlap: the
/// first row whose last span ended by this one's start.
fn rows(spans: &[(f64, f64)]) -> Vec<usize> {
    let mut ends: Vec<f64> = Vec::new();
    spans
        .iter()
        .map(|&(from, to)| match ends.iter().position(|e| *e <= from) {
            Some(row) => {
                ends[row] = to;
                row
            }
            None => {
                ends.push(to);
                ends.len() - 1
            }
        })
        .collect()
}

fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, impl CoordTranslate>,
    at: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(|e| e.to_string())
}

/// Draw into a fresh SVG string; a plotting error becomes a visible note instead of a failure.
fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>) -> String {
    sized_svg(SIZE, draw)
}

fn sized_svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
) -> String {
    let mut buf = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|_| draw(&root))
            .and_then(|_| root.present().map_err(|e| e.to_string()))
    };
    match result {
        Ok(()) => buf,
        Err(e) => format!(
            "<p class=\"plot-error\">plot unavailable: {}</p>",
            super::junit::escape(&e)
        ),
    }
}

/// Draw each series as a line with a legend entry, then the legend (top right).
fn lines<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    series: &[Series],
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    lines_with_legend(chart, series, SeriesLabelPosition::UpperRight)
}

fn lines_with_legend<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    series: &[Series],
    at: SeriesLabelPosition,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for s in series {
        let c = s.color;
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    legend(chart, at)
}

/// A time plot: x = seconds since the load started.
pub fn time_plot(
    title: &str,
    y_desc: &str,
    series: &[Series],
    faults: &[FaultWindow],
    y_floor_max: f64,
) -> String {
    svg(|root| {
        let x_max = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(1.0, f64::max)
            .max(faults.iter().filter_map(|f| f.end_s).fold(0.0, f64::max));
        let y_max = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(y_floor_max, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(62)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds since load start")
            .y_desc(y_desc)
            .light_line_style(RGBColor(240, 240, 240))
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| e.to_string())?;
        shade_faults(&mut chart, faults, x_max, (0.0, y_max))?;
        lines(&mut chart, series)
    })
}

/// One row of the node-by-node picture: a cluster node (or another line of the cluster's view,
/// such as `leader`), the faults that acted on it, and the states the view gave it.
#[derive(Debug, PartialEq)]
pub struct Lane {
    pub name: String,
    /// (from s, to s, label, fault index, failed).
    pub faults: Vec<(f64, f64, String, u32, bool)>,
    /// (from s, to s, state, whether it differs from the lane's first state).
    pub states: Vec<(f64, f64, String, bool)>,
}

/// The lanes of a run: every node a fault acted on (in name order), then every other name the
/// cluster's view printed (in its order). A fault with no end lasts to `x_max`.
pub fn lanes(faults: &[FaultWindow], views: &[ClusterView], x_max: f64) -> Vec<Lane> {
    let mut names: Vec<String> = faults
        .iter()
        .flat_map(|f| f.nodes.iter().map(|n| n.node.clone()))
        .collect();
    // n2 before n10.
    names.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
    names.dedup();
    for (name, _) in views.iter().flat_map(|v| &v.lines) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
        .into_iter()
        .map(|name| {
            let faults = faults
                .iter()
                .flat_map(|f| {
                    let end = f.end_s.unwrap_or(x_max).max(f.start_s + 0.05);
                    f.nodes.iter().filter(|n| n.node == name).map(move |n| {
                        let label = format!("#{} {}: {}", f.index, f.kind, n.effect);
                        (f.start_s, end, label, f.index, f.failed)
                    })
                })
                .collect();
            let mut states: Vec<(f64, f64, String, bool)> = Vec::new();
            let mut first: Option<String> = None;
            for (i, v) in views.iter().enumerate() {
                let to = views.get(i + 1).map_or(x_max, |next| next.at_s).max(v.at_s);
                let state = v
                    .lines
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or("—".to_string(), |(_, s)| s.clone());
                let first = first.get_or_insert_with(|| state.clone());
                match states.last_mut() {
                    Some(last) if last.2 == state => last.1 = to,
                    _ => states.push((v.at_s, to, state.clone(), state != *first)),
                }
            }
            Lane {
                name,
                faults,
                states,
            }
        })
        .collect()
}

/// The faults and the cluster node by node: a lane per node, its upper half the fault windows
/// that acted on it (coloured by fault), its lower half the states the cluster's view gave it
/// (amber where it differs from the state the run began with). None when there is neither.
pub fn lanes_plot(faults: &[FaultWindow], views: &[ClusterView], x_max: f64) -> Option<String> {
    let lanes = lanes(faults, views, x_max);
    if lanes.is_empty() {
        return None;
    }
    let n = lanes.len();
    // Faults that overlap on one node share its upper half, a row each; every lane is given
    // room for the most rows any lane needs.
    let rows: Vec<Vec<usize>> = lanes
        .iter()
        .map(|l| rows(&l.faults.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>()))
        .collect();
    let most = rows.iter().flatten().max().map_or(1, |r| r + 1);
    let height = 80 + (46 + 14 * (most as u32 - 1)) * n as u32;
    Some(sized_svg((SIZE.0, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("faults and the cluster, node by node", ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(62)
            // The first lane is at the top: lane i is centred on y = n - 1 - i.
            .build_cartesian_2d(0f64..x_max, -0.5f64..(n as f64 - 0.5))
            .map_err(|e| e.to_string())?;
        let names: Vec<String> = lanes.iter().map(|l| l.name.clone()).collect();
        draw_lane_mesh(&mut chart, &names)?;
        for (i, lane) in lanes.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            draw_lane_faults(&mut chart, lane, &rows[i], y, most)?;
            draw_lane_states(&mut chart, lane, y)?;
        }
        Ok(())
    }))
}

/// The mesh of a chart of lanes: seconds across, and each lane's name beside it, the first
/// lane at the top (lane i is centred on y = n - 1 - i).
fn draw_lane_mesh(chart: &mut LanesChart<'_, '_>, names: &[String]) -> Result<(), String> {
    let n = names.len();
    chart
        .configure_mesh()
        .x_desc("seconds since load start")
        .y_labels(n)
        .y_label_formatter(&|y| {
            let i = y.round();
            let on_lane = (y - i).abs() < 1e-6 && i >= 0.0;
            on_lane
                .then(|| names.get(n.wrapping_sub(1 + i as usize)).cloned())
                .flatten()
                .unwrap_or_default()
        })
        .disable_y_mesh()
        .light_line_style(RGBColor(240, 240, 240))
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(|e| e.to_string())
}

type LanesChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A lane's faults in its upper half, each in its row (`rows`, of `most`), labelled; a failed
/// one in grey.
fn draw_lane_faults(
    chart: &mut LanesChart<'_, '_>,
    lane: &Lane,
    rows: &[usize],
    y: f64,
    most: usize,
) -> Result<(), String> {
    let font = ("sans-serif", 11).into_font();
    let row_height = 0.40 / most as f64;
    for ((from, to, label, index, failed), row) in lane.faults.iter().zip(rows) {
        // Row 0 at the top of the upper half.
        let top = y + 0.42 - row_height * *row as f64;
        let bottom = top - row_height + 0.01;
        let color = if *failed {
            RGBColor(160, 160, 160)
        } else {
            PALETTE[*index as usize % PALETTE.len()]
        };
        chart
            .draw_series([
                Rectangle::new([(*from, bottom), (*to, top)], color.mix(0.35).filled()),
                Rectangle::new([(*from, bottom), (*to, top)], color.stroke_width(1)),
            ])
            .map_err(|e| e.to_string())?;
        chart
            .draw_series([Text::new(
                label.clone(),
                (*from + 0.2, top - row_height * 0.15),
                font.clone(),
            )])
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A lane's states over time in its lower half; a state other than the first one highlighted.
fn draw_lane_states(chart: &mut LanesChart<'_, '_>, lane: &Lane, y: f64) -> Result<(), String> {
    let font = ("sans-serif", 11).into_font();
    for (from, to, state, changed) in &lane.states {
        let fill = if *changed {
            RGBColor(255, 200, 90)
        } else {
            RGBColor(225, 230, 235)
        };
        chart
            .draw_series([
                Rectangle::new([(*from, y - 0.42), (*to, y - 0.02)], fill.filled()),
                Rectangle::new([(*from, y - 0.42), (*to, y - 0.02)], WHITE.stroke_width(1)),
            ])
            .map_err(|e| e.to_string())?;
        chart
            .draw_series([Text::new(
                state.clone(),
                (*from + 0.2, y - 0.08),
                font.clone(),
            )])
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Who consumed which shard over time: a lane per consumer, and in it a thin band per shard,
/// drawn in the shard's colour while the consumer received from it. Rebalances are shaded across
/// every lane, from their first membership change until they were over (`rebalances`, seconds
/// since the load start: from, to). None when no delivery had a shard.
pub fn consumers_plot(
    spans: &[ShardSpan],
    rebalances: &[(f64, f64)],
    x_max: f64,
) -> Option<String> {
    let consumers: std::collections::BTreeSet<u32> = spans.iter().map(|s| s.consumer).collect();
    let shards: Vec<i64> = spans
        .iter()
        .map(|s| s.shard)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if consumers.is_empty() {
        return None;
    }
    let lanes: Vec<u32> = consumers.into_iter().collect();
    let n = lanes.len();
    let key_height = 30 + 16 * shards.len().div_ceil(KEY_PER_ROW) as u32;
    let height = 84 + key_height + 40 * n as u32;
    Some(sized_svg((SIZE.0, height), |root| {
        // The shards' colours in rows of their own under the caption, clear of the lanes.
        let (key, root) = root.split_vertically(key_height);
        shard_key(&key, &shards)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(80)
            // The first consumer at the top: lane i is centred on y = n - 1 - i.
            .build_cartesian_2d(0f64..x_max, -0.5f64..(n as f64 - 0.5))
            .map_err(|e| e.to_string())?;
        let names: Vec<String> = lanes.iter().map(|c| format!("consumer {c}")).collect();
        draw_lane_mesh(&mut chart, &names)?;
        let shade = RGBColor(255, 200, 90).mix(0.45).filled();
        chart
            .draw_series(rebalances.iter().map(|&(from, to)| {
                Rectangle::new(
                    [(from, -0.5), (to.max(from + x_max / 400.0), n as f64 - 0.5)],
                    shade,
                )
            }))
            .map_err(|e| e.to_string())?;
        let band = 0.8 / shards.len() as f64;
        for (k, &shard) in shards.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let rects = spans.iter().filter(|s| s.shard == shard).filter_map(|s| {
                let lane = lanes.iter().position(|&c| c == s.consumer)?;
                let top = (n - 1 - lane) as f64 + 0.4 - band * k as f64;
                // A span of one delivery still shows, as a sliver.
                let to = s.to.max(s.from + x_max / 800.0);
                Some(Rectangle::new(
                    [(s.from, top), (to, top - band * 0.85)],
                    color.filled(),
                ))
            });
            chart.draw_series(rects).map_err(|e| e.to_string())?;
        }
        Ok(())
    }))
}

const KEY_PER_ROW: usize = 10;

/// The caption, and under it each shard's colour with its name, `KEY_PER_ROW` to a row.
fn shard_key(area: &DrawingArea<SVGBackend<'_>, Shift>, shards: &[i64]) -> Result<(), String> {
    let caption = ("sans-serif", 15).into_font();
    let font = ("sans-serif", 11).into_font();
    area.draw(&Text::new(
        "who consumed which shard, over time",
        (SIZE.0 as i32 / 2 - 120, 6),
        caption,
    ))
    .map_err(|e| e.to_string())?;
    for (k, shard) in shards.iter().enumerate() {
        let x = 90 + 70 * (k % KEY_PER_ROW) as i32;
        let y = 30 + 16 * (k / KEY_PER_ROW) as i32;
        let color = PALETTE[k % PALETTE.len()];
        area.draw(&Rectangle::new([(x, y), (x + 10, y + 8)], color.filled()))
            .map_err(|e| e.to_string())?;
        area.draw(&Text::new(
            format!("shard {shard}"),
            (x + 14, y - 2),
            font.clone(),
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Points of a trend plot drawn apart: a night that regressed (a red ring), failed (a cross), or
/// could not vouch for its figures (an orange square).
#[derive(Default)]
pub struct NightMarks {
    pub regressed: Vec<(f64, f64)>,
    pub failed: Vec<(f64, f64)>,
    pub inconclusive: Vec<(f64, f64)>,
}

/// A value per night: x = the night's index, labelled with `nights[x]`; points where a metric
/// regressed against the night before get a red ring, points whose run failed an expectation a
/// black cross, points whose run was inconclusive an orange square.
pub fn trend_plot(
    title: &str,
    y_desc: &str,
    series: &[Series],
    marks: &NightMarks,
    nights: &[String],
) -> String {
    svg(|root| {
        let x_max = (nights.len().max(2) - 1) as f64 + 0.3;
        let y_max = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
            // All zeros (no loss on any night) still gets a readable axis.
            .max(1.0)
            * 1.15;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(62)
            .build_cartesian_2d(-0.3f64..x_max, 0f64..y_max)
            .map_err(|e| e.to_string())?;
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                nights.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_labels(nights.len().clamp(2, 12))
            .x_label_formatter(&label)
            .y_desc(y_desc)
            .light_line_style(RGBColor(240, 240, 240))
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| e.to_string())?;
        for s in series {
            let c = s.color;
            chart
                .draw_series(PointSeries::of_element(
                    s.points.iter().copied(),
                    3,
                    c.filled(),
                    &|p, size, style| Circle::new(p, size, style),
                ))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(
                marks
                    .regressed
                    .iter()
                    .map(|&p| Circle::new(p, 7, RGBColor(214, 39, 40).stroke_width(2))),
            )
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                marks
                    .failed
                    .iter()
                    .map(|&p| Cross::new(p, 6, BLACK.stroke_width(2))),
            )
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(marks.inconclusive.iter().map(|&(x, y)| {
                // A square about the point, as wide as the regression ring, in pixels.
                EmptyElement::at((x, y))
                    + Rectangle::new([(-6, -6), (6, 6)], RGBColor(247, 144, 9).stroke_width(2))
            }))
            .map_err(|e| e.to_string())?;
        lines(&mut chart, series)
    })
}

/// A rate on an axis: 500, 20k, 1.5M.
fn rate_label(x: f64) -> String {
    let (v, unit) = if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let s = format!("{v:.1}");
    format!("{}{unit}", s.trim_end_matches('0').trim_end_matches('.'))
}

/// The y range of a latency plot on a log scale: room above the highest point, and at least a
/// decade below it.
fn log_latency_range(series: &[Series]) -> (f64, f64) {
    let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let y_max = ys().fold(0.01, f64::max) * 1.5;
    let y_min = ys()
        .fold(f64::INFINITY, f64::min)
        .clamp(0.001, y_max / 10.0)
        * 0.7;
    (y_min, y_max)
}

/// Latency against achieved throughput, one line per series through its steps (x = messages
/// per second, y = milliseconds on a log scale), each step marked: the classic benchmark curve,
/// flat until the broker saturates, then rising steeply.
pub fn curve_plot(title: &str, series: &[Series]) -> String {
    // Three to a row: p50, p99 and p99.9 side by side.
    sized_svg((380, 280), |root| {
        // Brokers differ a hundredfold in throughput: a log axis keeps each curve readable.
        let xs = || series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let x_max = xs().fold(1.0, f64::max) * 1.5;
        let x_min = xs().fold(f64::INFINITY, f64::min).clamp(0.1, x_max / 10.0) / 1.5;
        let (y_min, y_max) = log_latency_range(series);
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(62)
            .build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("achieved throughput (msg/s, log)")
            .x_label_formatter(&|x| rate_label(*x))
            .y_desc("latency (ms, log)")
            .light_line_style(RGBColor(240, 240, 240))
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| e.to_string())?;
        for s in series {
            let c = s.color;
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(|e| e.to_string())?;
        }
        // Latency rises to the right: the legend keeps out of the way at the bottom right.
        lines_with_legend(&mut chart, series, SeriesLabelPosition::LowerRight)
    })
}

/// Latency by percentile, x on a log scale of 1/(1-q) as HdrHistogram plots do:
/// 0 → 0%, 1 → 90%, 2 → 99%, 3 → 99.9% ...
pub fn quantile_plot(title: &str, series: &[Series]) -> String {
    svg(|root| {
        let x_max = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(2.0, f64::max)
            .ceil();
        let (y_min, y_max) = log_latency_range(series);
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(62)
            .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms, log)")
            .x_labels(x_max as usize + 1)
            .x_label_formatter(&|x| percentile_label(*x))
            .light_line_style(RGBColor(240, 240, 240))
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| e.to_string())?;
        lines(&mut chart, series)
    })
}

/// 0 → "0%", 1 → "90%", 2 → "99%", 3 → "99.9%".
pub fn percentile_label(x: f64) -> String {
    let q = 100.0 * (1.0 - 10f64.powf(-x));
    let s = format!("{q:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// The quantile → value curve of a histogram, as (x = -log10(1 - q), milliseconds).
pub fn quantile_curve(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
    let mut pts = Vec::new();
    if h.is_empty() {
        return pts;
    }
    for i in 0..=200 {
        // Evenly spaced on the log axis, from 0% to 99.999%.
        let x = i as f64 * 5.0 / 200.0;
        let q = 1.0 - 10f64.powf(-x);
        pts.push((x, h.value_at_quantile(q) as f64 / 1000.0));
    }
    pts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_labels_that_would_overlap_go_on_rows_of_their_own() {
        let f = |start_s: f64, kind: &str| FaultWindow {
            kind: kind.into(),
            start_s,
            ..FaultWindow::default()
        };
        // Three at once, one soon after the first three's labels end, one far later.
        let faults = [
            f(10.0, "node-corrupt"),
            f(10.0, "node-duplicate"),
            f(10.0, "node-loss"),
            f(20.0, "pause"),
            f(40.0, "node-loss"),
        ];
        assert_eq!(label_rows(&faults, 60.0), [0, 1, 2, 0, 0]);
        // The same start on a long run: a label is then short in seconds, but still shared.
        assert_eq!(label_rows(&faults[..2], 3600.0), [0, 1]);
    }

    #[test]
    fn percentile_labels_follow_the_log_axis() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
    }

    #[test]
    fn downsampling_bounds_points_and_keeps_averages() {
        let pts: Vec<(f64, f64)> = (0..3000).map(|i| (i as f64, 2.0)).collect();
        let d = downsample(pts, 600);
        assert_eq!(d.len(), 600);
        assert!(d.iter().all(|p| p.1 == 2.0));
        assert_eq!(d[0].0, 2.0); // mean of 0..5
    }

    #[test]
    fn rates_on_an_axis_are_short() {
        assert_eq!(rate_label(500.0), "500");
        assert_eq!(rate_label(20_000.0), "20k");
        assert_eq!(rate_label(1_500_000.0), "1.5M");
    }

    #[test]
    fn time_plot_is_svg_with_fault_shading_and_legend() {
        let s = Series::new(
            "acked",
            PALETTE[0],
            (0..60).map(|i| (i as f64, 100.0)).collect(),
        );
        let f = FaultWindow {
            index: 0,
            kind: "consumer-crash".into(),
            start_s: 10.0,
            end_s: Some(15.0),
            ..Default::default()
        };
        let svg = time_plot("throughput", "msg/s", &[s], &[f], 1.0);
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        assert!(svg.contains("consumer-crash") && svg.contains("acked"));
        assert!(svg.contains("<rect"));
    }

    #[test]
    fn each_node_gets_a_lane_with_its_faults_and_its_states() {
        let effect = |node: &str, effect: &str| crate::check::NodeEffect {
            node: node.into(),
            effect: effect.into(),
        };
        let cut = FaultWindow {
            index: 0,
            kind: "node-partition".into(),
            start_s: 10.0,
            end_s: Some(40.0),
            nodes: vec![effect("n10", "cut from n1"), effect("n1", "cut from n10")],
            ..Default::default()
        };
        let kill = FaultWindow {
            index: 1,
            kind: "node-kill".into(),
            start_s: 50.0,
            end_s: None,
            nodes: vec![effect("n2", "kill")],
            ..cut.clone()
        };
        let view = |at_s: f64, lines: &[(&str, &str)]| ClusterView {
            at_s,
            lines: lines
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        };
        let views = [
            view(0.0, &[("n1", "n1 n2"), ("leader", "n1")]),
            view(20.0, &[("n1", "paused"), ("leader", "n2")]),
            view(30.0, &[("n1", "paused"), ("leader", "n1")]),
            view(45.0, &[("n1", "n1 n2"), ("leader", "n1")]),
        ];
        let lanes = lanes(&[cut.clone(), kill], &views, 60.0);
        let names: Vec<&str> = lanes.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["n1", "n2", "n10", "leader"]);
        assert_eq!(
            lanes[0].faults,
            [(
                10.0,
                40.0,
                "#0 node-partition: cut from n10".into(),
                0,
                false
            )]
        );
        // A kill that is never undone lasts to the end of the axis.
        assert_eq!(lanes[1].faults[0].1, 60.0);
        assert!(lanes[1].states.iter().all(|s| s.2 == "—" && !s.3));
        // Equal states in a row are one stretch; only what differs from the start is marked.
        assert_eq!(
            lanes[0].states,
            [
                (0.0, 20.0, "n1 n2".into(), false),
                (20.0, 45.0, "paused".into(), true),
                (45.0, 60.0, "n1 n2".into(), false),
            ]
        );
        assert_eq!(lanes[3].states.len(), 3);
        let svg = lanes_plot(&[cut], &views, 60.0).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("cut from n10") && svg.contains("paused"));
        assert!(lanes_plot(&[], &[], 60.0).is_none());
    }

    #[test]
    fn quantile_curve_is_monotonic() {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let c = quantile_curve(&h);
        assert!(c.windows(2).all(|w| w[1].1 >= w[0].1));
        assert!((c[0].1 - 0.001).abs() < 1e-9);
        let svg = quantile_plot("latency", &[Series::new("e2e", PALETTE[1], c)]);
        assert!(svg.contains("99.9%"), "axis labels missing");
    }
}
