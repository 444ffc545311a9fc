"""`mammo report`: one self-contained HTML page about a RUN (images embedded, no network, opens from disk).

- `collect`: the numbers and tables (config, data counts, metrics and baselines, subgroups, gallery picks).
- `render`: the HTML page from those, every value escaped.
- `build`: `build_report(RUN)`: figures, heatmaps for the gallery, explanation checks, the file.
"""
