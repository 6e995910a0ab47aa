// Line charts on uPlot (served from our own origin): epochs on x, one or more series on y, an
// optional log scale, and the best epoch marked by a dashed vertical line.
import uPlot from "/assets/uplot/uPlot.esm.js";

export const COLOURS = { train: "#1f77b4", validation: "#ff7f0e", metric: "#9467bd", metric2: "#8c564b", lr: "#17becf", best: "#2ca02c" };

/** Draws the best epoch: a dashed vertical line across the plot. */
function bestEpochPlugin(getBest) {
  return {
    hooks: {
      draw: [
        (u) => {
          const best = getBest();
          if (best == null || u.data[0].length === 0) return;
          const x = u.valToPos(best, "x", true);
          if (!Number.isFinite(x)) return;
          const { ctx } = u;
          ctx.save();
          ctx.strokeStyle = COLOURS.best;
          ctx.lineWidth = 1.5 * devicePixelRatio;
          ctx.setLineDash([5 * devicePixelRatio, 4 * devicePixelRatio]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        },
      ],
    },
  };
}

/**
 * A chart in `el`. `series`: [{ label, colour, gaps }] (gaps: connect across missing epochs).
 * Returns { setData(epochs, columns), setLog(on), setTotalEpochs(n), redraw(), resize(), destroy() }.
 */
export function lineChart(el, { series, yLabel, log = false, getBest = () => null, height = 260 }) {
  let epochs = [];
  let columns = series.map(() => []);
  let totalEpochs = 0;
  let plot = null;

  const width = () => Math.max(300, Math.floor(el.clientWidth || el.parentElement?.clientWidth || 600));

  const clean = (v) => (typeof v === "number" && Number.isFinite(v) && (!log || v > 0) ? v : null);
  const data = () => [epochs, ...columns.map((col) => col.map(clean))];

  function build() {
    plot?.destroy();
    el.textContent = "";
    plot = new uPlot(
      {
        width: width(),
        height,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: false, range: (_u, min, max) => [1, Math.max(2, totalEpochs, Number.isFinite(max) ? max : 2)] },
          y: log ? { distr: 3, log: 10 } : { auto: true },
        },
        axes: [
          { label: "epoch", stroke: "#444", grid: { stroke: "#eee" } },
          { label: yLabel + (log ? " (log)" : ""), stroke: "#444", grid: { stroke: "#eee" }, size: 60 },
        ],
        series: [
          { label: "epoch" },
          ...series.map((s) => ({
            label: s.label,
            stroke: s.colour,
            width: 2,
            spanGaps: s.gaps === true,
            points: { show: (u) => u.data[0].length <= 40, size: 5 },
          })),
        ],
        plugins: [bestEpochPlugin(getBest)],
      },
      data(),
      el,
    );
  }
  build();

  return {
    setData(xs, cols) {
      epochs = xs;
      columns = cols;
      plot.setData(data());
      el.dataset.points = String(xs.length);
    },
    setLog(on) {
      if (on === log) return;
      log = on;
      build();
      el.dataset.scale = log ? "log" : "linear";
    },
    setTotalEpochs(n) {
      totalEpochs = n;
    },
    redraw() {
      plot.redraw();
    },
    resize() {
      plot.setSize({ width: width(), height });
    },
    destroy() {
      plot?.destroy();
      plot = null;
    },
  };
}
