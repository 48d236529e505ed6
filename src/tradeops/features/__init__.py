"""Features level: indicators, labels, selection, scaling, images, feature store."""
