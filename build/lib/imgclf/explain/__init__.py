"""Where a model looked: Grad-CAM maps (gradcam) and drawing them over the image (heatmap)."""
