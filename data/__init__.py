"""Data: the embedded synthetic cohort (clinosim), synthetic chest X-ray rendering, real-data readers."""
