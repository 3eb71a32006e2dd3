//! rolekd-plot: pictures without a plotting stack, shared by the schedule plots, the run
//! report and the search report: an RGB [`Canvas`] with a 3x5 pixel font, the frame of an
//! epoch chart, PNG through the `png` crate, and the data beside each picture as CSV (and
//! SVG line charts where zooming helps).

pub mod canvas;
pub mod chart;
pub mod data;
pub mod font;
pub mod png;

pub use canvas::{Canvas, BLACK, WHITE};
pub use chart::EpochChart;
pub use data::{svg_lines, write_csv, Line};
