// Reads an HdrHistogram interval log with the reference JavaScript implementation
// (hdr-histogram-js) and prints one JSON object per interval on stdout:
// {tag, start_s, length_s, total, max, min_nonzero, counts: [[index, count], ...]}.
// start_s is relative to the log's StartTime. Used by tests/test_hlog.py.
"use strict";
const fs = require("fs");
const hdr = require("hdr-histogram-js");

const path = process.argv[2];
if (!path) {
  process.stderr.write("usage: node read_hlog.js <file.hlog>\n");
  process.exit(2);
}
const reader = new hdr.HistogramLogReader(fs.readFileSync(path, "utf-8"));
const out = [];
for (;;) {
  const h = reader.nextIntervalHistogram();
  if (h === null) break;
  const counts = [];
  for (let i = 0; i < h.countsArrayLength; i++) {
    const c = h.getCountAtIndex(i);
    if (c !== 0) counts.push([i, c]);
  }
  out.push({
    tag: h.tag,
    start_s: h.startTimeStampMsec / 1000 - reader.startTimeSec,
    length_s: (h.endTimeStampMsec - h.startTimeStampMsec) / 1000,
    total: h.totalCount,
    max: h.maxValue,
    min_nonzero: h.minNonZeroValue,
    counts: counts,
  });
}
process.stdout.write(JSON.stringify(out) + "\n");
