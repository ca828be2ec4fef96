// Display equations wider than the column are scaled down to fit it (MathJax 3 does not break lines): on a phone a
// long equation is shown whole, smaller, instead of behind a horizontal scroll. The scale is kept in data-fit-scale,
// which the browser check of the book reads (make browser-test). A table of the library (flatrob-table) that cannot
// fit the column without breaking its words is stacked instead: one block per row, each value under its column's
// name.
(function () {
  function fit() {
    document.querySelectorAll('mjx-container[display="true"]').forEach(function (c) {
      c.style.fontSize = '';
      delete c.dataset.fitScale;
      var need = c.scrollWidth, have = c.clientWidth;
      if (have > 0 && need > have + 1) {
        var scale = Math.max(0.5, (have / need) * 0.98);
        c.style.fontSize = (scale * 100).toFixed(1) + '%';
        c.dataset.fitScale = scale.toFixed(3);
      }
    });
    // An inline formula longer than its line (rare) scrolls; the others are left alone (a scroll box around every
    // formula shows a scroll bar wherever a glyph overhangs its box by a pixel).
    document.querySelectorAll('mjx-container:not([display="true"])').forEach(function (c) {
      c.classList.remove('flatrob-wide-inline');
      var have = c.parentElement ? c.parentElement.clientWidth : 0;
      if (have > 0 && c.getBoundingClientRect().width > have + 1) c.classList.add('flatrob-wide-inline');
    });
    // A table is stacked when it cannot fit the column without breaking words (its columns are never narrower
    // than their longest word, custom.css).
    document.querySelectorAll('table.flatrob-table').forEach(function (t) {
      t.classList.remove('flatrob-stacked');
      var have = t.parentElement ? t.parentElement.clientWidth : 0;
      if (have > 0 && t.getBoundingClientRect().width > have + 1) t.classList.add('flatrob-stacked');
    });
    document.documentElement.dataset.mathFitted = 'yes';
  }
  function start() {
    // after the book's fonts have loaded (the text's widths depend on them), then after MathJax has typeset
    var fonts = document.fonts && document.fonts.ready ? document.fonts.ready : Promise.resolve();
    fonts.then(function () {
      if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
        MathJax.startup.promise.then(fit);
      } else {
        fit();
      }
    });
  }
  window.addEventListener('load', start);
  var timer;
  window.addEventListener('resize', function () {
    clearTimeout(timer);
    timer = setTimeout(fit, 150);
  });
})();
