"""KPI side of the rig: HDR latency recording (``hdr``), percentile summaries (``summary``),
HdrHistogram interval logs (``hlog``) and the self-contained HTML report (``report``)."""
