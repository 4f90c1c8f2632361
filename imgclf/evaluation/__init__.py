"""Judging a trained model: metrics, calibration, "not sure", the mistakes gallery, the card.

- interpretation: `Interpretation`, one model's predictions on a split and all that is
  read from them (metrics, confusion, top losses, reliability, risk-coverage, gallery)
- metrics: accuracy, loss, F1 and per-class scores (scikit-learn does the counting)
- calibration: temperature scaling, fitted and judged on validation
- selective: the "not sure" threshold and the risk-coverage curve
- gallery: drawing the most confidently wrong images with their heatmaps
- model_card: the export's model card, from templates/model_card.md.j2
"""
