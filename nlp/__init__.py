"""Understanding Chinese items: normalisation, segmentation, classification, risk, schemes, events."""
