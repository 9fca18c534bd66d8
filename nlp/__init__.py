"""Text models: normalisation, segmentation, features, classifiers (topic, emotion, polarity), training."""
