// Draws the report's charts with ECharts from the JSON the page embeds (#report-data): no request leaves the page.
// Loaded in <head> so that it records every error of the page (uncaught errors, failed scripts, unhandled
// rejections, console.error) into <body data-errors="[...]">, which headless tests read from the dumped DOM.
(function () {
  'use strict';

  var errors = [];

  function publish() {
    if (document.body) {
      document.body.setAttribute('data-errors', JSON.stringify(errors));
    }
  }

  function record(message) {
    errors.push(String(message));
    publish();
  }

  window.addEventListener('error', function (event) {
    var target = event.target;
    if (target && target !== window && (target.src || target.href)) {
      record('failed to load ' + (target.src || target.href));  // a script or image that did not load
    } else {
      record(event.message || 'error');
    }
  }, true);
  window.addEventListener('unhandledrejection', function (event) {
    record('unhandled rejection: ' + (event.reason && event.reason.stack || event.reason));
  });
  var consoleError = console.error;
  console.error = function () {
    record(Array.prototype.map.call(arguments, String).join(' '));
    return consoleError.apply(console, arguments);
  };

  var GOOD = '#2e7d32';
  var BAD = '#c62828';
  var NEUTRAL = '#546e7a';

  function pct(value, digits) {
    if (value === null || value === undefined) {
      return '—';
    }
    var text = (value * 100).toFixed(digits === undefined ? 1 : digits) + '%';
    return (value > 0 ? '+' : '') + text.replace('-', '−');
  }

  function thousands(count) {
    return String(count).replace(/\B(?=(\d{3})+(?!\d))/g, ',');  // the same in every browser locale
  }

  function make(id) {
    var element = document.getElementById(id);
    if (!element) {
      return null;
    }
    var chart = window.echarts.init(element, null, {renderer: 'svg'});
    window.addEventListener('resize', function () { chart.resize(); });
    return chart;
  }

  function empty(id, text) {
    var element = document.getElementById(id);
    if (element) {
      element.style.height = 'auto';
      element.className += ' muted';
      element.textContent = text;
    }
  }

  // The significance colour of an interval, read the metric's good direction.
  function tone(row) {
    var good = row.higherIsBetter ? row.lower > 0 : row.upper < 0;
    var bad = row.higherIsBetter ? row.upper < 0 : row.lower > 0;
    return good ? GOOD : bad ? BAD : NEUTRAL;
  }

  function forest(data) {
    var rows = [];
    data.metrics.forEach(function (metric) {
      metric.comparisons.forEach(function (c) {
        if (c.effect !== null && c.ci_lower !== null && c.ci_upper !== null) {
          rows.push({label: metric.key + ' · ' + c.variant, effect: c.effect, lower: c.ci_lower,
                     upper: c.ci_upper, higherIsBetter: metric.higher_is_better});
        }
      });
    });
    if (!rows.length) {
      empty('chart-forest', data.labels.no_comparisons);
      return;
    }
    var chart = make('chart-forest');
    chart.setOption({
      animation: false,
      grid: {left: 16, right: 32, top: 24, bottom: 32, containLabel: true},
      tooltip: {trigger: 'item', formatter: function (p) {
        var row = rows[p.dataIndex];
        return row.label + '<br>' + pct(row.effect) + ' [' + pct(row.lower) + ', ' + pct(row.upper) + ']';
      }},
      xAxis: {type: 'value', axisLabel: {formatter: function (v) { return pct(v, 0); }}},
      yAxis: {type: 'category', inverse: true, data: rows.map(function (r) { return r.label; })},
      series: [
        {
          type: 'custom', name: 'interval', silent: true,
          encode: {x: [1, 2], y: 0},
          data: rows.map(function (r, i) { return [i, r.lower, r.upper]; }),
          renderItem: function (params, api) {
            var low = api.coord([api.value(1), api.value(0)]);
            var high = api.coord([api.value(2), api.value(0)]);
            var half = api.size([0, 1])[1] * 0.15;
            var style = {stroke: tone(rows[params.dataIndex]), lineWidth: 2};
            return {type: 'group', children: [
              {type: 'line', shape: {x1: low[0], y1: low[1], x2: high[0], y2: high[1]}, style: style},
              {type: 'line', shape: {x1: low[0], y1: low[1] - half, x2: low[0], y2: low[1] + half}, style: style},
              {type: 'line', shape: {x1: high[0], y1: high[1] - half, x2: high[0], y2: high[1] + half}, style: style}
            ]};
          }
        },
        {
          type: 'scatter', name: 'effect', symbolSize: 11,
          data: rows.map(function (r, i) { return {value: [r.effect, i], itemStyle: {color: tone(r)}}; }),
          // The category axis runs top to bottom, so the line starts at the top: its label goes there.
          markLine: {silent: true, symbol: 'none', label: {formatter: data.labels.no_effect, position: 'start'},
                     lineStyle: {type: 'dashed', color: '#90a4ae'}, data: [{xAxis: 0}]}
        }
      ]
    });
  }

  function cumulative(data) {
    if (!data.points.length) {
      empty('chart-cumulative', data.labels.no_snapshots);
      return;
    }
    var chart = make('chart-cumulative');
    var series = [];
    var names = [];
    var selected = {};
    var palette = ['#1565c0', '#ef6c00', '#6a1b9a', '#00838f', '#ad1457', '#558b2f'];
    // One line and its interval band per metric and comparison; pick(point) is the comparison at that point.
    function add(name, selectedNow, pick) {
      var color = palette[names.length % palette.length];
      var at = function (point) { return pick(point) || {effect: null, ci_lower: null, ci_upper: null}; };
      var stack = 'band:' + name;
      names.push(name);
      selected[name] = selectedNow;
      series.push({name: name, type: 'line', color: color, symbolSize: 6, z: 3, id: 'effect:' + name,
                   data: data.points.map(function (p) {
                     var c = at(p);
                     return {value: [p.at, c.effect], interval: [c.ci_lower, c.ci_upper]};
                   })});
      // The band is a stack of an invisible lower bound and the interval's width; 'all' stacks across zero.
      series.push({name: name, type: 'line', color: color, stack: stack, stackStrategy: 'all', symbol: 'none',
                   lineStyle: {opacity: 0}, tooltip: {show: false}, silent: true,
                   data: data.points.map(function (p) { var c = at(p); return [p.at, c.ci_lower]; })});
      series.push({name: name, type: 'line', color: color, stack: stack, stackStrategy: 'all', symbol: 'none',
                   lineStyle: {opacity: 0}, areaStyle: {color: color, opacity: 0.18}, silent: true,
                   data: data.points.map(function (p) {
                     var c = at(p);
                     return [p.at, c.ci_lower === null || c.ci_upper === null ? null : c.ci_upper - c.ci_lower];
                   })});
    }
    function comparison(metrics, metricKey, variant) {
      var m = metrics && metrics.filter(function (x) { return x.key === metricKey; })[0];
      return m && m.comparisons.filter(function (x) { return x.variant === variant; })[0];
    }
    var heldOut = data.points.some(function (p) { return p.holdout; });
    data.metrics.forEach(function (metric) {
      data.variants.slice(1).forEach(function (variant) {
        add(metric.key + ' · ' + variant, metric.key === data.chart_metric, function (point) {
          return comparison(point.metrics, metric.key, variant);
        });
      });
      if (heldOut) {  // the campaign against the held-out users, off until picked in the legend
        add(metric.key + ' · ' + data.labels.all_vs_holdout, false, function (point) {
          return point.holdout && comparison(point.holdout.metrics, metric.key, '(all variants)');
        });
      }
    });
    chart.setOption({
      animation: false,
      color: palette,
      legend: {data: names, selected: selected, top: 0},
      grid: {left: 16, right: 32, top: 40, bottom: 32, containLabel: true},
      tooltip: {trigger: 'axis', formatter: function (items) {
        var lines = items.filter(function (p) { return String(p.seriesId).indexOf('effect:') === 0; })
          .map(function (p) {
            var ci = p.data.interval;
            return p.marker + p.seriesName + ': ' + pct(p.data.value[1]) + ' [' + pct(ci[0]) + ', ' + pct(ci[1]) + ']';
          });
        return items.length ? new Date(items[0].axisValue).toLocaleString() + '<br>' + lines.join('<br>') : '';
      }},
      xAxis: {type: 'time'},
      yAxis: {type: 'value', axisLabel: {formatter: function (v) { return pct(v, 0); }}},
      series: series
    });
  }

  function users(data) {
    if (!data.points.length) {
      empty('chart-users', data.labels.no_snapshots);
      return;
    }
    var chart = make('chart-users');
    var series = data.variants.map(function (variant) {
      return {name: variant, type: 'line', symbolSize: 6,
              data: data.points.map(function (p) { return [p.at, p.users[variant] || 0]; })};
    });
    var planned = data.planned_users_per_variant;
    if (planned) {
      series[0].markLine = {silent: true, symbol: 'none', lineStyle: {type: 'dashed', color: BAD},
                            label: {formatter: data.labels.plan + ' ' + thousands(planned), position: 'insideEndTop'},
                            data: [{yAxis: planned}]};
    }
    chart.setOption({
      animation: false,
      legend: {data: data.variants, top: 0},
      grid: {left: 16, right: 32, top: 40, bottom: 32, containLabel: true},
      tooltip: {trigger: 'axis'},
      xAxis: {type: 'time'},
      // The plan's line stays in view even while the users are far below it.
      yAxis: {type: 'value', max: planned ? function (extent) { return Math.max(extent.max, planned); } : null},
      series: series
    });
  }

  function draw() {
    publish();
    var source = document.getElementById('report-data');
    if (!source || !document.getElementById('charts') || !document.querySelector('.chart')) {
      return;  // a list or error page, or a report whose server has no chart library (the page says so)
    }
    if (!window.echarts) {
      record('the chart library did not load');
      return;
    }
    var data = JSON.parse(source.textContent);
    [forest, cumulative, users].forEach(function (chart) {
      try {
        chart(data);
      } catch (error) {
        record((chart.name || 'chart') + ': ' + (error && error.stack || error));
      }
    });
    document.body.setAttribute('data-charts', 'drawn');
  }

  document.addEventListener('DOMContentLoaded', draw);
}());
