"""Understanding Chinese items: normalisation, segmentation, classification, risk, schemes, events."""

from nlp._compiled import use_current_code

use_current_code()
