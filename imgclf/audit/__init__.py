"""The data audit: what is probably wrong with the prepared data, found on pretrained features.

- embeddings: what the findings compare: each image's pretrained EfficientNet-Lite
  features, and its pixels (small copies)
- findings: likely label errors (cleanlab on out-of-sample probabilities),
  near-duplicates (within and across splits) and outliers (cleanlab's
  out-of-distribution scores)
- neighbours: nearest-neighbour search and projections, exact up to 50,000 images,
  faiss' inverted-file index and sampled fits above
- report: the findings with file names, what to exclude, the CSVs, the gallery and
  the metrics the `audit` stage writes, and the table `imgclf audit` prints
"""
